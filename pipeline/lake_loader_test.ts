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

/** Options flushing every record on its own. */
const ONE_ROW = {
  validation: VALIDATION as never,
  flushRows: 1,
  flushBytes: 1 << 20,
  flushIntervalMs: 60_000,
};

const NO_LETTERS = { send: () => Promise.resolve(), close: () => Promise.resolve() };

/** A writer keeping the offsets it takes in `written`; a write fails with what `fail()` answers. */
function recordingWriter(written: number[], fail: () => Error | undefined = () => undefined) {
  return {
    write: (batch: BronzeBatch): Promise<BronzeWriteResult> => {
      const err = fail();
      if (err) return Promise.reject(err);
      written.push(...batch.rows.map((r) => r.offset));
      return Promise.resolve({ rows: batch.rows.length, skipped: 0, files: [], bytes: 0 });
    },
  };
}

Deno.test("LakeLoader retries a failed write while heartbeating, and gives up when a heartbeat fails", async () => {
  let failures = 3, beats = 0;
  const commits: number[] = [], errors: unknown[] = [], written: number[] = [];
  const l = new LakeLoader(
    recordingWriter(written, () => failures-- > 0 ? new Error("store down") : undefined),
    NO_LETTERS,
    {
      ...ONE_ROW,
      commit: (_t, _p, next) => (commits.push(next), Promise.resolve()),
      onError: (err) => errors.push(err),
    },
  );
  // The first write fails in the background: its row is buffered again, and the next full buffer
  // retries it with its own, here, until the lake takes them.
  await l.handle([record(0)], () => (beats++, Promise.resolve()));
  await l.handle([record(1)], () => (beats++, Promise.resolve()));
  assert.deepEqual(commits, [2], "committed once the lake took the batch");
  assert.deepEqual(written, [0, 1]);
  assert.equal(errors.length, 3, "each failure is reported, none thrown");
  assert.ok(beats >= 2, `${beats} heartbeats`);
  // A member that lost the group stops retrying: nothing is committed, the log delivers again.
  failures = Infinity;
  const lost = () => Promise.reject(new Error("The group is rebalancing"));
  await l.handle([record(2)], lost); // written in the background, and fails there
  await assert.rejects(() => l.handle([record(3)], lost), /rebalancing|store down/);
  assert.deepEqual(commits, [2]);
  // A shutdown during the outage: the retrying flush gives up instead of waiting for the store.
  const retrying = l.handle([record(4)], () => Promise.resolve());
  l.stopRetrying();
  await assert.rejects(() => retrying, /store down/);
  assert.deepEqual(commits, [2]);
  failures = 0;
  await l.close();
  assert.deepEqual(commits, [2, 5], "close() flushes what is still buffered");
  assert.deepEqual(written, [0, 1, 2, 3, 4], "every row once, in order");
});

/** Whether `p` settles before the next macrotask (every stub here answers in microtasks). */
async function settles(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await new Promise((r) => setTimeout(r, 0));
  return done;
}

/**
 * A lake whose writes wait until the test lets them through ({@link release}) or fails them; its
 * `txn` is the last offset of the last write through, and `rows` every offset written, so a row
 * written twice shows.
 */
function gatedLake() {
  const pending: { batch: BronzeBatch; ok: () => void; fail: () => void }[] = [];
  const lake = { txn: -1, rows: [] as number[], batches: [] as number[][], pending };
  const writer = {
    write: (batch: BronzeBatch) =>
      new Promise<BronzeWriteResult>((resolve, reject) => {
        pending.push({
          batch,
          ok: () => {
            lake.txn = batch.lastOffset;
            lake.rows.push(...batch.rows.map((r) => r.offset));
            lake.batches.push([batch.firstOffset, batch.lastOffset]);
            resolve({ rows: batch.rows.length, skipped: 0, files: [], bytes: 0 });
          },
          fail: () => reject(new Error("store down")),
        });
      }),
    committedOffset: () => Promise.resolve(lake.txn + 1),
  };
  const release = () => pending.shift()!.ok();
  const fail = () => pending.shift()!.fail();
  return { lake, writer, release, fail };
}

function gatedLoader(writer: ReturnType<typeof gatedLake>["writer"]) {
  const commits: number[] = [], errors: unknown[] = [];
  const l = new LakeLoader(
    writer,
    { send: () => Promise.resolve(), close: () => Promise.resolve() },
    {
      validation: VALIDATION as never,
      flushRows: 2,
      flushBytes: 1 << 20,
      flushIntervalMs: 60_000,
      commit: (_t, _p, next) => (commits.push(next), Promise.resolve()),
      onError: (err) => errors.push(err),
    },
  );
  return { l, commits, errors };
}

const beat = () => Promise.resolve();

Deno.test("LakeLoader buffers the next records while a full buffer is written, one write in flight per partition", async () => {
  const { lake, writer, release } = gatedLake();
  const { l, commits } = gatedLoader(writer);
  assert.ok(await settles(l.handle([record(0), record(1)], beat)), "returns with its write out");
  assert.equal(lake.pending.length, 1);
  assert.equal(l.buffered, 2, "rows being written count as buffered");
  assert.ok(await settles(l.handle([record(2)], beat)), "the next records are buffered meanwhile");
  const full = l.handle([record(3)], beat);
  assert.equal(await settles(full), false, "a second full buffer waits for the write in flight");
  assert.equal(lake.pending.length, 1, "one write at a time");
  assert.equal(l.buffered, 4);
  assert.deepEqual(commits, [], "no offset is committed before the lake has it");
  release();
  await full;
  assert.deepEqual(commits, [2]);
  assert.deepEqual(lake.pending.map((p) => p.batch.rows.map((r) => r.offset)), [[2, 3]]);
  const closing = l.close();
  assert.equal(await settles(closing), false, "close() waits for the write in flight");
  release();
  await closing;
  assert.deepEqual(lake.batches, [[0, 1], [2, 3]]);
  assert.deepEqual(commits, [2, 4], "commits in order, each after its write");
  assert.equal(l.buffered, 0);
});

Deno.test("LakeLoader writes the rows of a write that failed in the background again, once, before later ones", async () => {
  const { lake, writer, release, fail } = gatedLake();
  const { l, commits, errors } = gatedLoader(writer);
  assert.ok(await settles(l.handle([record(0), record(1)], beat)), "written in the background");
  await l.handle([record(2)], beat);
  fail();
  const retried = l.handle([record(3), record(4)], beat);
  assert.equal(await settles(retried), false, "the next full buffer retries it, here");
  assert.equal(errors.length, 1, "the background failure is reported");
  assert.deepEqual(lake.pending.map((p) => [p.batch.firstOffset, p.batch.lastOffset]), [[0, 4]]);
  assert.equal(l.buffered, 5);
  release();
  await retried;
  await l.handle([record(5), record(6)], beat);
  assert.equal(lake.pending.length, 1, "back to writing in the background");
  release();
  await l.close();
  assert.deepEqual(lake.rows, [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(commits, [5, 7]);
});

Deno.test("LakeLoader without heartbeat throws at the retry of a failed background write, and takes the records again", async () => {
  const { lake, writer, release, fail } = gatedLake();
  const { l, commits } = gatedLoader(writer);
  assert.ok(await settles(l.handle([record(0), record(1)])), "written in the background");
  fail();
  const retry = l.handle([record(2), record(3)]);
  await settles(retry);
  fail();
  await assert.rejects(() => retry, /store down/);
  // The input hands the same records again (the WAL input does after an error).
  const again = l.handle([record(2), record(3)]);
  await settles(again);
  assert.deepEqual(lake.pending.map((p) => p.batch.rows.map((r) => r.offset)), [[0, 1, 2, 3]]);
  release();
  await again;
  await l.close();
  assert.deepEqual(lake.rows, [0, 1, 2, 3]);
  assert.deepEqual(commits, [4]);
});

for (const outcome of ["lands", "fails"] as const) {
  Deno.test(`LakeLoader takes records delivered again while the write of some of them is in flight: the write ${outcome}`, async () => {
    const { lake, writer, release, fail } = gatedLake();
    const { l, commits } = gatedLoader(writer);
    assert.ok(await settles(l.handle([record(0), record(1)], beat)), "written in the background");
    await l.handle([record(2)], beat);
    // A rebalance: the log delivers again from the offset it has committed, 0.
    const again = l.handle([0, 1, 2, 3].map((o) => record(o)), beat);
    assert.equal(await settles(again), false, "waits for the write of the rows it repeats");
    if (outcome === "lands") release();
    else fail();
    await settles(again);
    release();
    await again;
    await l.close();
    assert.deepEqual(lake.rows, [0, 1, 2, 3], "each row once");
    assert.deepEqual(
      lake.batches,
      outcome === "lands" ? [[0, 1], [2, 3]] : [[0, 3]],
    );
    assert.deepEqual(commits, outcome === "lands" ? [2, 4] : [4]);
    assert.equal(l.stats.redelivered, outcome === "lands" ? 2 : 0);
  });
}

Deno.test("LakeLoader reports a failed offset commit as such, keeps the rows and commits the next batch", async () => {
  let refuse = true;
  const commits: number[] = [], flushErrors: unknown[] = [], commitErrors: unknown[] = [];
  const written: number[] = [];
  const l = new LakeLoader(
    recordingWriter(written),
    NO_LETTERS,
    {
      ...ONE_ROW,
      commit: (_t, _p, next) =>
        refuse
          ? Promise.reject(new Error("Consumer group was not initialized"))
          : (commits.push(next), Promise.resolve()),
      onError: (err) => flushErrors.push(err),
      onCommitError: (err) => commitErrors.push(err),
    },
  );
  await l.handle([record(0)], () => Promise.resolve());
  await l.flushAll();
  assert.equal(commitErrors.length, 1, "the refused commit is reported");
  assert.deepEqual(flushErrors, [], "as a commit failure, not as a failed flush");
  refuse = false;
  await l.handle([record(1)], () => Promise.resolve());
  await l.close();
  assert.deepEqual(written, [0, 1], "the lake keeps the batch whose commit failed");
  assert.deepEqual(commits, [2], "the next commit covers both");
});
