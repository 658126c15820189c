/**
 * The ingest path's JavaScript stages one at a time, in this process, on the records every
 * benchmark sends: CPU time per event of each (this process' user + system time, so the figure
 * does not move with other work on the machine). What `bench/findings.md` calls "stage by stage".
 *
 *   deno run -A bench/stages.ts [events]
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { decodeUtf8, parseBody } from "../routes/body.ts";
import { encodeEnvelope } from "../pipeline/durable_log.ts";
import { validateEvent } from "../pipeline/validate.ts";
import { IncomingEnvelope, PAYLOADS } from "../shared/schemas.ts";
import { isoToMicros, microsToIso } from "../shared/time.ts";
import { fraudThresholds } from "../config.ts";
import { AlertPipeline } from "../pipeline/fraud/alert_pipeline.ts";
import { FraudProcessor } from "../pipeline/fraud/processor.ts";
import { FraudDetector } from "../pipeline/fraud/detector.ts";
import { MemoryWindowStore } from "../pipeline/fraud/windows.ts";
import { createLogger } from "../shared/logger.ts";
import { toColumns } from "../lake/bronze.ts";
import { clientEvents, DEFAULTS, gatewayRecords, VALIDATION } from "./lib/events.ts";
import { cpuSeconds } from "./lib/proc.ts";

/** CPU µs per event of `fn` run over `n` events (after one warm-up round). */
export async function cpuPerEvent(n: number, fn: () => unknown | Promise<unknown>) {
  await fn();
  const c0 = await cpuSeconds();
  const rounds = 3;
  for (let r = 0; r < rounds; r++) await fn();
  return ((await cpuSeconds()) - c0) * 1e6 / (n * rounds);
}

/** Every stage's CPU µs per event. */
export async function stageCosts(total = 100_000): Promise<Record<string, number>> {
  const events = clientEvents(total);
  const body = new TextEncoder().encode(JSON.stringify(events));
  const { envelopes, encoded } = gatewayRecords(events);
  const limits = {
    maxBytes: 64 * 1024 * 1024,
    maxEvents: total,
    maxDepth: DEFAULTS.MAX_JSON_DEPTH,
  };
  const parsed = events.map((e) => JSON.parse(JSON.stringify(e)));
  const dec = new TextDecoder("utf-8", { fatal: true });
  const ctx = (trust: boolean) => ({
    receivedAtMs: Date.now(),
    trustReceivedAt: trust,
    source: "http",
    eventId: () => crypto.randomUUID(),
  });
  const out: Record<string, number> = {};
  out.read_and_parse_body = await cpuPerEvent(
    total,
    () => parseBody(decodeUtf8(body), false, limits),
  );
  out.zod_envelope = await cpuPerEvent(
    total,
    () => parsed.forEach((e) => IncomingEnvelope.safeParse(e)),
  );
  out.zod_payload = await cpuPerEvent(
    total,
    () => parsed.forEach((e) => PAYLOADS[e.type as keyof typeof PAYLOADS]?.safeParse(e.payload)),
  );
  out.times_iso_us = await cpuPerEvent(
    total,
    () => envelopes.forEach((e) => microsToIso(isoToMicros(e.occurred_at))),
  );
  out.event_id = await cpuPerEvent(total, () => events.forEach(() => crypto.randomUUID()));
  out.validate_http = await cpuPerEvent(
    total,
    () => parsed.forEach((e) => validateEvent(e, ctx(false), VALIDATION)),
  );
  out.encode_record = await cpuPerEvent(
    total,
    () => envelopes.forEach((e) => Buffer.from(encodeEnvelope(e))),
  );
  out.record_parse = await cpuPerEvent(
    total,
    () => encoded.forEach((b) => JSON.parse(dec.decode(b))),
  );
  const records = encoded.map((b) => JSON.parse(dec.decode(b)));
  out.validate_record = await cpuPerEvent(
    total,
    () => records.forEach((e) => validateEvent(e, ctx(true), VALIDATION)),
  );
  const detector = new FraudDetector(new MemoryWindowStore(), {
    thresholds: fraudThresholds(DEFAULTS),
    cooldownMs: DEFAULTS.FRAUD_COOLDOWN_MS,
  });
  const processor = new FraudProcessor(
    detector,
    new AlertPipeline(undefined, [], createLogger({ level: "error" })),
  );
  out.score_rules = await cpuPerEvent(total, async () => {
    for (let i = 0; i < envelopes.length; i += 2000) {
      await (await processor.process(envelopes.slice(i, i + 2000))).settled;
    }
  });
  const rows = envelopes.map((event, offset) => ({ offset, event }));
  const byType = Map.groupBy(rows, (r) => r.event.type);
  out.bronze_columns = await cpuPerEvent(total, () => {
    for (const [type, group] of byType) toColumns(group, type, "events", 0);
  });
  return out;
}

if (import.meta.main) {
  const costs = await stageCosts(Number(Deno.args[0] ?? 100_000));
  for (const [k, v] of Object.entries(costs)) console.log(`${k.padEnd(22)} ${v.toFixed(2)} µs`);
}
