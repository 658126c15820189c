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

/** A valid record of partition 0 at `offset`, or an invalid one with `bad`. */
function record(offset: number, bad = false) {
  const event = bad ? { type: "login" } : {
    event_id: `00000000-0000-4000-8000-${String(offset).padStart(12, "0")}`,
    type: "page_view",
    user_id: "u-1",
    occurred_at: new Date().toISOString(),
    payload: { page: "/" },
  };
  const value = new TextEncoder().encode(JSON.stringify(event));
  return { topic: "t", partition: 0, offset, timestampMs: Date.now(), value };
}

const VALIDATION = { unknownTypes: "reject", maxPastMs: 30 * 86_400_000, maxFutureMs: 3_600_000 };

Deno.test("LakeLoader skips records delivered again that the table's txn already holds", async () => {
  const batches: BronzeBatch[] = [], letters: DeadLetter[] = [], commits: number[] = [];
  let floor = 5;
  const l = new LakeLoader(
    {
      write: (batch) => {
        batches.push(batch);
        return Promise.resolve({ rows: batch.rows.length, skipped: 0, files: [], bytes: 0 });
      },
      committedOffset: () => Promise.resolve(floor),
    },
    { send: (d) => (letters.push(...d), Promise.resolve()), close: () => Promise.resolve() },
    {
      validation: VALIDATION as never,
      flushRows: 1000,
      flushBytes: 1 << 20,
      flushIntervalMs: 60_000,
      commit: (_t, _p, next) => (commits.push(next), Promise.resolve()),
      onError: (err) => {
        throw err;
      },
    },
  );
  // A restart: the log delivers from its committed offset 0, the lake holds 0..4 (one invalid).
  await l.handle([0, 1, 2, 3, 4, 5, 6].map((o) => record(o, o === 2)));
  await l.flushAll();
  assert.deepEqual(batches.map((b) => [b.firstOffset, b.lastOffset]), [[5, 6]]);
  assert.deepEqual(batches[0]!.rows.map((r) => r.offset), [5, 6]);
  assert.equal(letters.length, 0, "a record the lake holds is not dead-lettered again");
  assert.equal(l.stats.redelivered, 5);
  // A rebalance gave the partition back after another worker wrote up to 19: 7..19 are skipped
  // and the log's offset moves to 20 although nothing was buffered.
  floor = 20;
  await l.handle([7, 8, 9].map((o) => record(o)).map((r) => ({ ...r, offset: r.offset + 3 })));
  await l.handle([13, 14].map((o) => record(o)));
  await l.flushAll();
  assert.equal(batches.length, 1);
  assert.equal(l.stats.redelivered, 10);
  assert.deepEqual(commits, [7, 13, 15]);
  await l.close();
});

Deno.test("LakeLoader retries a failed flush while heartbeating, and gives up when a heartbeat fails", async () => {
  let failures = 3, beats = 0;
  const commits: number[] = [], errors: unknown[] = [];
  const l = new LakeLoader(
    {
      write: (batch) =>
        failures-- > 0
          ? Promise.reject(new Error("store down"))
          : Promise.resolve({ rows: batch.rows.length, skipped: 0, files: [], bytes: 0 }),
    },
    { send: () => Promise.resolve(), close: () => Promise.resolve() },
    {
      validation: VALIDATION as never,
      flushRows: 1,
      flushBytes: 1 << 20,
      flushIntervalMs: 60_000,
      commit: (_t, _p, next) => (commits.push(next), Promise.resolve()),
      onError: (err) => errors.push(err),
    },
  );
  await l.handle([record(0)], () => (beats++, Promise.resolve()));
  assert.deepEqual(commits, [1], "committed once the lake took the batch");
  assert.equal(errors.length, 3, "each failure is reported, none thrown");
  assert.ok(beats >= 3, `${beats} heartbeats`);
  // A member that lost the group stops retrying: nothing is committed, the log delivers again.
  failures = Infinity;
  await assert.rejects(
    () => l.handle([record(1)], () => Promise.reject(new Error("The group is rebalancing"))),
    /rebalancing|store down/,
  );
  assert.deepEqual(commits, [1]);
  // A shutdown during the outage: the retrying flush gives up instead of waiting for the store.
  const retrying = l.handle([record(2)], () => Promise.resolve());
  l.stopRetrying();
  await assert.rejects(() => retrying, /store down/);
  assert.deepEqual(commits, [1]);
  failures = 0;
  await l.close();
  assert.deepEqual(commits, [1, 3], "close() flushes what is still buffered");
});
