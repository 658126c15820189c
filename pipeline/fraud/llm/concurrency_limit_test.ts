// Tests of the LLM judge's bounded queue.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { ConcurrencyLimit } from "./concurrency_limit.ts";

Deno.test("ConcurrencyLimit grants slots, queues up to maxQueue, refuses beyond", async () => {
  const limit = new ConcurrencyLimit(1, 1);
  assert.equal(await limit.acquire(), true);
  const waiting = limit.acquire();
  assert.ok(waiting !== null);
  assert.equal(limit.acquire(), null, "queue full");
  assert.deepEqual([limit.inFlight, limit.queued], [1, 1]);
  limit.release(); // passes the slot on
  assert.equal(await waiting, true);
  assert.deepEqual([limit.inFlight, limit.queued], [1, 0]);
  limit.release();
  assert.deepEqual([limit.inFlight, limit.queued], [0, 0]);
});

Deno.test("ConcurrencyLimit.refuseWaiting() answers every waiter false", async () => {
  const limit = new ConcurrencyLimit(1, 2);
  await limit.acquire();
  const a = limit.acquire();
  const b = limit.acquire();
  limit.refuseWaiting();
  assert.deepEqual(await Promise.all([a, b]), [false, false]);
  assert.equal(limit.queued, 0);
});
