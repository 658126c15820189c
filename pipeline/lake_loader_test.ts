// Unit tests of the lake loader with an in-memory batch writer.
import assert from "node:assert/strict";
import type { BronzeBatch, BronzeWriteResult } from "../lake/bronze.ts";
import { LakeLoader } from "./lake_loader.ts";
import type { DeadLetter } from "./durable_log.ts";

function loader(batches: BronzeBatch[], letters: DeadLetter[]) {
  return new LakeLoader(
    {
      write: (batch): Promise<BronzeWriteResult> => {
        batches.push(batch);
        return Promise.resolve({ rows: batch.rows.length, skipped: 0, files: [], bytes: 0 });
      },
    },
    { send: (l) => (letters.push(...l), Promise.resolve()), close: () => Promise.resolve() },
    {
      validation: { unknownTypes: "reject", maxPastMs: 30 * 86_400_000, maxFutureMs: 3_600_000 },
      flushRows: 1000,
      flushBytes: 1 << 20,
      flushIntervalMs: 60_000,
      commit: () => Promise.resolve(),
      onError: (err) => {
        throw err;
      },
    },
  );
}

Deno.test("LakeLoader takes a record whose Kafka timestamp no Date can hold as received now", async () => {
  const batches: BronzeBatch[] = [], letters: DeadLetter[] = [];
  const l = loader(batches, letters);
  const now = new Date().toISOString();
  const value = new TextEncoder().encode(JSON.stringify({
    type: "page_view",
    user_id: "u-1",
    occurred_at: now,
    payload: { page: "/" },
  }));
  const stamps = [1e16, -1e16, Number.NaN];
  for (const [offset, timestampMs] of stamps.entries()) {
    await l.handle([{ topic: "t", partition: 0, offset, timestampMs, value }]);
  }
  await l.close();
  const rows = batches.flatMap((b) => b.rows);
  assert.deepEqual(letters.map((d) => d.reasons), []);
  assert.equal(rows.length, 3, "no record is stuck behind an invalid timestamp");
  for (const r of rows) {
    assert.ok(Math.abs(Date.parse(r.event.received_at) - Date.now()) < 60_000, r.event.received_at);
  }
});
