/**
 * The gateway's HTTP app (`routes/app.ts`, default limits and validation) served by `Deno.serve`
 * with an event log that confirms at once: what `POST /events` costs without durability, between
 * the bare hello-world (`hello_server.ts`) and the real gateway.
 *
 *   deno run -A bench/app_server.ts PORT
 *
 * @module
 */
import { Ingestor } from "../pipeline/ingest.ts";
import type { DeadLetterSink, EventLog } from "../pipeline/durable_log.ts";
import { createLogger } from "../shared/logger.ts";
import { createApp } from "../routes/app.ts";
import { DEFAULTS, VALIDATION } from "./lib/events.ts";

const instant: EventLog = {
  append: () => Promise.resolve(),
  overloaded: () => undefined,
  close: () => Promise.resolve(),
};
const noLetters: DeadLetterSink = { send: () => Promise.resolve(), close: () => Promise.resolve() };
const app = createApp({
  limits: {
    maxBytes: DEFAULTS.MAX_BODY_BYTES,
    maxEvents: DEFAULTS.MAX_EVENTS_PER_REQUEST,
    maxDepth: DEFAULTS.MAX_JSON_DEPTH,
  },
  logger: createLogger({ level: "error" }),
  ingestor: new Ingestor(instant, noLetters, {
    validation: VALIDATION,
    timeoutMs: DEFAULTS.INGEST_TIMEOUT_MS,
  }),
});
const port = Number(Deno.args[0] ?? "8082");
Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, app.fetch);
// Exit cleanly on a signal, so `--cpu-prof` writes its profile.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => Deno.exit(0));
}
