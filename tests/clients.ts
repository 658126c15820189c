/**
 * Clients of a gateway under test, and the exactly-once check of what they were told.
 *
 * @module
 */
import assert from "node:assert/strict";
import { clientEvent } from "./gateway_process.ts";
import type { BronzeReadRow } from "./lake_helpers.ts";

/**
 * `count` clients posting batches of `batch` events until stopped; records what was acknowledged
 * and refused. `target` is read per request, so the gateway may be restarted on another port.
 */
export function startClients(target: () => string, count = 2, batch = 20) {
  const acked = new Set<string>();
  const statuses = new Map<number, number>();
  let retryAfter = 0, running = true, n = 0;
  const loops = Array.from({ length: count }, async () => {
    while (running) {
      const events = Array.from({ length: batch }, (_, i) => clientEvent(n + i));
      n += events.length;
      let status = 0;
      try {
        const res = await fetch(`${target()}/events`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(events),
        });
        status = res.status;
        if (res.headers.get("retry-after")) retryAfter++;
        await res.body?.cancel();
      } catch {
        status = -1; // connection refused or reset: not acknowledged
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status === 202) { for (const e of events) acked.add(e.event_id as string); }
      else await new Promise((r) => setTimeout(r, 100));
    }
  });
  return {
    acked,
    statuses,
    get retryAfter() {
      return retryAfter;
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Asserts every acknowledged id is in bronze, and no event or log position is there twice. */
export function assertExactlyOnce(rows: BronzeReadRow[], acked: Set<string>): void {
  const ids = new Set(rows.map((r) => r.event_id));
  const missing = [...acked].filter((id) => !ids.has(id));
  assert.equal(missing.length, 0, `${missing.length} of ${acked.size} acknowledged events lost`);
  assert.equal(ids.size, rows.length, "an event is in bronze twice");
  const positions = new Set(rows.map((r) => `${r.log_topic}/${r.log_partition}/${r.log_offset}`));
  assert.equal(positions.size, rows.length, "a log position is in bronze twice");
}
