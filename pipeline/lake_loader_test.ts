// Unit tests of the lake loader with an in-memory batch writer.
import assert from "node:assert/strict";
import type { BronzeBatch, BronzeWriteResult } from "../lake/bronze.ts";
import { LakeLoader } from "./lake_loader.ts";
import type { DeadLetter, RecordDecoder } from "./durable_log.ts";

function loader(batches: BronzeBatch[], letters: DeadLetter[], decoder?: RecordDecoder) {
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
      ...(decoder ? { decoder } : {}),
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

Deno.test("LakeLoader validates what its decoder made of framed records and dead-letters its refusals", async () => {
  const batches: BronzeBatch[] = [], letters: DeadLetter[] = [];
  const now = new Date().toISOString();
  const event = (user: string) => ({ type: "login", user_id: user, occurred_at: now, payload: {} });
  const framed = new Uint8Array([0, 0, 0, 0, 7, 1, 2]);
  const bare = new TextEncoder().encode(JSON.stringify(event("bare")));
  let beats = 0;
  const decoder: RecordDecoder = {
    decode: async (records, heartbeat) => {
      await heartbeat?.();
      return records.map((r) => {
        if (r.value[0] !== 0) return undefined;
        return r.offset === 0
          ? { ok: true, value: event("decoded") }
          : r.offset === 1
          ? { ok: true, value: { ...event("decoded"), user_id: "" } }
          : { ok: false, issues: [{ path: "", code: "schema_unknown", message: "no id 7" }] };
      });
    },
  };
  const l = loader(batches, letters, decoder);
  const records = [framed, framed, framed, bare].map((value, offset) => ({
    topic: "t",
    partition: 0,
    offset,
    timestampMs: Date.now(),
    value,
  }));
  await l.handle(records, () => (beats++, Promise.resolve()));
  await l.close();
  assert.equal(beats, 1, "the heartbeat reaches the decoder");
  const rows = batches.flatMap((b) => b.rows);
  assert.deepEqual(rows.map((r) => [r.offset, r.event.user_id]), [[0, "decoded"], [3, "bare"]]);
  assert.deepEqual(letters.map((d) => [d.offset, d.reasons[0]!.code]), [
    [1, "too_small"],
    [2, "schema_unknown"],
  ]);
  assert.equal(letters[1]!.raw, framed, "the original bytes");
});

Deno.test("LakeLoader without a decoder says a framed record needs a schema registry", async () => {
  const batches: BronzeBatch[] = [], letters: DeadLetter[] = [];
  const l = loader(batches, letters);
  const value = new Uint8Array([0, 0, 0, 0, 7, ...new TextEncoder().encode("{}")]);
  await l.handle([{ topic: "t", partition: 0, offset: 0, timestampMs: Date.now(), value }]);
  await l.close();
  assert.equal(letters.length, 1);
  assert.equal(letters[0]!.reasons[0]!.code, "invalid_json");
  assert.match(letters[0]!.reasons[0]!.message, /schema registry \(magic byte 0\).*no registry/);
});
