// Tests of GroupCommitter: batching, bounds, failure isolation, shutdown, concurrency.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { OverloadedError, ShuttingDownError } from "../shared/errors.ts";
import { GroupCommitter } from "./group_commit.ts";

/** A flush call the test finishes by hand. */
interface Call<T> {
  items: T[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A flush function whose calls wait until the test resolves or rejects them. */
function manualFlush<T>() {
  const calls: Call<T>[] = [];
  const flush = (items: T[]) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ items: [...items], resolve, reject });
    });
  return { calls, flush };
}

/** Lets pending promise callbacks run. */
function settle(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/** Tracks whether a promise has settled, without leaving it unhandled. */
function track(p: Promise<void>) {
  const state = { done: false, error: undefined as unknown };
  const settled = p.then(
    () => {
      state.done = true;
    },
    (err) => {
      state.done = true;
      state.error = err;
    },
  );
  return { state, settled };
}

Deno.test("GroupCommitter.submit() batches concurrent submits into few flushes", async () => {
  const durable = new Set<number>();
  const flushes: number[][] = [];
  const gc = new GroupCommitter<number>(async (items) => {
    flushes.push([...items]);
    await new Promise((r) => setTimeout(r, 1));
    for (const i of items) durable.add(i);
  });
  const resolvedBeforeDurable: number[] = [];
  await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      gc.submit([i]).then(() => {
        if (!durable.has(i)) resolvedBeforeDurable.push(i);
      })),
  );
  assert.ok(flushes.length <= 5, `${flushes.length} flushes for 100 submits`);
  assert.deepEqual(resolvedBeforeDurable, [], "a submit resolved before its flush finished");
  assert.deepEqual(flushes.flat().sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
  assert.equal(gc.pending, 0);
  await gc.close();
});

Deno.test("GroupCommitter.submit() keeps submission order within and across flushes", async () => {
  const { calls, flush } = manualFlush<string>();
  const gc = new GroupCommitter(flush);
  const all = [gc.submit(["a1", "a2"]), gc.submit(["b1"]), gc.submit(["c1", "c2"])];
  await settle();
  assert.deepEqual(calls.map((c) => c.items), [["a1", "a2"]]);
  calls[0]!.resolve();
  await settle();
  assert.deepEqual(calls.map((c) => c.items), [["a1", "a2"], ["b1", "c1", "c2"]]);
  calls[1]!.resolve();
  await Promise.all(all);
  await gc.close();
});

Deno.test("GroupCommitter.submit() resolves an empty submission without a flush", async () => {
  const { calls, flush } = manualFlush<number>();
  const gc = new GroupCommitter(flush);
  await gc.submit([]);
  assert.equal(calls.length, 0);
  await gc.close();
});

Deno.test("GroupCommitter respects maxBatch and splits a big submission", async (t) => {
  await t.step("no flush holds more than maxBatch items", async () => {
    const sizes: number[] = [];
    const gc = new GroupCommitter<number>(async (items) => {
      sizes.push(items.length);
      await Promise.resolve();
    }, { maxBatch: 7 });
    await Promise.all(Array.from({ length: 20 }, (_, i) => gc.submit([i, i, i])));
    assert.ok(sizes.every((n) => n <= 7), JSON.stringify(sizes));
    assert.equal(sizes.reduce((a, b) => a + b, 0), 60);
    await gc.close();
  });

  await t.step("a big submission resolves only once all its parts are flushed", async () => {
    const { calls, flush } = manualFlush<number>();
    const gc = new GroupCommitter(flush, { maxBatch: 3 });
    const small = track(gc.submit([0, 1]));
    const big = track(gc.submit([10, 11, 12, 13, 14, 15, 16, 17]));
    await settle();
    // The first submit starts a flush at once; the big one waits and is then split.
    assert.deepEqual(calls.map((c) => c.items), [[0, 1]]);

    calls[0]!.resolve();
    await settle();
    assert.equal(small.state.done, true);
    assert.equal(small.state.error, undefined);
    for (const [i, part] of [[10, 11, 12], [13, 14, 15]].entries()) {
      assert.deepEqual(calls[i + 1]!.items, part);
      calls[i + 1]!.resolve();
      await settle();
      assert.equal(big.state.done, false, `resolved after only ${i + 1} of its 3 flushes`);
    }
    assert.deepEqual(calls[3]!.items, [16, 17]);
    calls[3]!.resolve();
    await big.settled;
    assert.equal(big.state.error, undefined);
    assert.equal(calls.length, 4);
    assert.equal(gc.pending, 0);
    await gc.close();
  });
});

Deno.test("GroupCommitter.submit() beyond maxPending throws OverloadedError without a flush", async () => {
  const { calls, flush } = manualFlush<number>();
  const gc = new GroupCommitter(flush, { maxPending: 5 });
  const first = gc.submit([1, 2, 3]);
  await settle();
  assert.equal(calls.length, 1);
  assert.equal(gc.pending, 3);

  await assert.rejects(gc.submit([4, 5, 6]), OverloadedError);
  await assert.rejects(gc.submit(Array.from({ length: 6 }, (_, i) => i)), OverloadedError);
  assert.equal(gc.pending, 3, "refused items are not counted");
  const fits = gc.submit([4, 5]); // exactly maxPending
  assert.equal(gc.pending, 5);
  await settle();
  assert.equal(calls.length, 1, "refused submissions never reach flush");

  calls[0]!.resolve();
  await first;
  await settle();
  assert.deepEqual(calls[1]!.items, [4, 5]);
  calls[1]!.resolve();
  await fits;
  // Once confirmed, room is free again.
  const again = gc.submit([7, 8, 9]);
  await settle();
  calls[2]!.resolve();
  await again;
  await gc.close();
});

Deno.test("GroupCommitter: a failing flush rejects exactly the submissions in it", async () => {
  const { calls, flush } = manualFlush<string>();
  const gc = new GroupCommitter(flush, { maxBatch: 2 });
  const a = track(gc.submit(["a"]));
  const b = track(gc.submit(["b"]));
  const c = track(gc.submit(["c1", "c2"]));
  const d = track(gc.submit(["d"]));
  await settle();
  assert.deepEqual(calls.map((x) => x.items), [["a"]]);
  calls[0]!.resolve();
  await settle();
  assert.deepEqual(calls[1]!.items, ["b", "c1"]);

  const boom = new Error("disk full");
  calls[1]!.reject(boom);
  await settle();
  assert.ok(a.state.done, "a was flushed before");
  assert.equal(a.state.error, undefined);
  assert.equal(b.state.error, boom);
  assert.equal(c.state.error, boom, "a submission fails when any part of it fails");
  assert.equal(d.state.done, false);
  // c2 belonged to the failed submission and is dropped, not flushed.
  assert.deepEqual(calls[2]!.items, ["d"]);
  assert.equal(gc.pending, 1);

  calls[2]!.resolve();
  await d.settled;
  assert.equal(d.state.error, undefined);
  const e = gc.submit(["e"]);
  await settle();
  calls[3]!.resolve();
  await e;
  assert.equal(calls.length, 4);
  assert.equal(gc.pending, 0);
  await gc.close();
});

Deno.test("GroupCommitter: a flush failing with undefined still rejects", async () => {
  const gc = new GroupCommitter<number>(() => Promise.reject(undefined));
  await assert.rejects(gc.submit([1]), /Flush failed/);
  await gc.close();
});

Deno.test("GroupCommitter: a failed part of a submission split over concurrent flushes rejects it once", async () => {
  const { calls, flush } = manualFlush<number>();
  const gc = new GroupCommitter(flush, { maxBatch: 2, concurrency: 2 });
  const rejections: unknown[] = [];
  const p = gc.submit([1, 2, 3, 4]).catch((err) => {
    rejections.push(err);
  });
  await settle();
  assert.deepEqual(calls.map((c) => c.items), [[1, 2], [3, 4]]);
  calls[0]!.reject(new Error("first half failed"));
  calls[1]!.resolve();
  await p;
  assert.equal(rejections.length, 1);
  assert.match(String(rejections[0]), /first half failed/);
  assert.equal(gc.pending, 0);
  await gc.close();
});

Deno.test("GroupCommitter.close() waits for queued items, then refuses submits", async (t) => {
  await t.step("waits for in-flight and queued flushes", async () => {
    const { calls, flush } = manualFlush<number>();
    const gc = new GroupCommitter(flush, { maxBatch: 1 });
    const subs = [track(gc.submit([1])), track(gc.submit([2]))];
    await settle();
    const closed = track(gc.close());
    await settle();
    assert.equal(closed.state.done, false);

    await assert.rejects(gc.submit([3]), ShuttingDownError);
    calls[0]!.resolve();
    await settle();
    assert.equal(closed.state.done, false, "item 2 is still queued");
    assert.deepEqual(calls[1]!.items, [2], "queued items are still flushed after close()");
    calls[1]!.resolve();
    await closed.settled;
    assert.ok(subs.every((s) => s.state.done && s.state.error === undefined));
    assert.equal(calls.length, 2);
  });

  await t.step("resolves at once when nothing is pending", async () => {
    const gc = new GroupCommitter<number>(() => Promise.resolve());
    await gc.close();
    await assert.rejects(gc.submit([1]), (err: unknown) => {
      assert.ok(err instanceof ShuttingDownError);
      assert.ok(err instanceof OverloadedError, "a 503 to clients");
      return true;
    });
  });

  await t.step("resolves after a failed flush too", async () => {
    const { calls, flush } = manualFlush<number>();
    const gc = new GroupCommitter(flush);
    const sub = gc.submit([1]).catch(() => {});
    await settle();
    const closed = gc.close();
    calls[0]!.reject(new Error("nope"));
    await sub;
    await closed;
  });
});

Deno.test("GroupCommitter respects the concurrency option", async (t) => {
  for (const concurrency of [1, 3]) {
    await t.step(`concurrency ${concurrency}`, async () => {
      let running = 0;
      let maxRunning = 0;
      const gc = new GroupCommitter<number>(async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, 2));
        running--;
      }, { maxBatch: 2, concurrency });
      await Promise.all(Array.from({ length: 30 }, (_, i) => gc.submit([i])));
      assert.equal(maxRunning, concurrency);
      await gc.close();
    });
  }
});
