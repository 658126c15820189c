/**
 * The events every benchmark sends: realistic client events of all 13 types from the traffic
 * generator (`scripts/events_gen.ts`, scenario `normal`), the envelopes the gateway makes of them
 * (validated with the default configuration), and the bytes it stores in the log.
 *
 * @module
 */
import { type Config, loadConfig } from "../../config.ts";
import { encodeEnvelope } from "../../pipeline/durable_log.ts";
import type { Envelope } from "../../shared/schemas.ts";
import { validateEvent, type ValidationOptions } from "../../pipeline/validate.ts";
import { type ClientEvent, createScenario } from "../../scripts/events_gen.ts";

/** The gateway's configuration with every default, as `deno task dev` runs it. */
export const DEFAULTS: Config = loadConfig({});

/** The validation options `main.ts` derives from {@link DEFAULTS}. */
export const VALIDATION: ValidationOptions = {
  unknownTypes: DEFAULTS.UNKNOWN_TYPES,
  maxPastMs: DEFAULTS.EVENT_MAX_PAST_DAYS * 86_400_000,
  maxFutureMs: DEFAULTS.EVENT_MAX_FUTURE_SECONDS * 1000,
};

/** `n` client events of ordinary traffic (10,000 users), as a client POSTs them. */
export function clientEvents(n: number, seed = 7): ClientEvent[] {
  const scenario = createScenario("normal", { seed, users: 10_000 });
  return Array.from({ length: n }, () => scenario.next().event);
}

/** The envelopes the gateway accepts for `events` at `nowMs`, and their bytes in the log. */
export function gatewayRecords(
  events: readonly ClientEvent[],
  nowMs = Date.now(),
): { envelopes: Envelope[]; encoded: Uint8Array[] } {
  const envelopes: Envelope[] = [];
  for (const e of events) {
    const r = validateEvent(e, {
      receivedAtMs: nowMs,
      trustReceivedAt: false,
      source: "http",
      eventId: () => crypto.randomUUID(),
    }, VALIDATION);
    if (!r.ok) throw new Error(`A generated event is invalid: ${JSON.stringify(r.issues)}`);
    envelopes.push(r.event);
  }
  return { envelopes, encoded: envelopes.map(encodeEnvelope) };
}

/** Mean of a list of byte lengths. */
export function meanBytes(items: readonly (Uint8Array | string)[]): number {
  const enc = new TextEncoder();
  let sum = 0;
  for (const i of items) sum += typeof i === "string" ? enc.encode(i).length : i.byteLength;
  return sum / Math.max(1, items.length);
}
