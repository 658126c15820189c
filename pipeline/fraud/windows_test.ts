/**
 * Tests of {@link MemoryWindowStore}: the window store contract, plus what only the memory store
 * has (an injected clock, the `maxKeys` bound).
 *
 * @module
 */
import assert from "node:assert/strict";
import { windowStoreContract } from "../../tests/window_store_contract.ts";
import { MemoryWindowStore, type WindowOp } from "./windows.ts";

/** A clock the test moves by hand. */
function fakeClock(start = 1_700_000_000_000) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

windowStoreContract("MemoryWindowStore", () => {
  const clock = fakeClock();
  const store = new MemoryWindowStore({ now: clock.now });
  return Promise.resolve({
    store,
    prefix: `test:${crypto.randomUUID()}:`,
    cleanup: () => store.close(),
    pttl: (key: string) => Promise.resolve(store.pttl(key)),
    advance: (ms: number) => Promise.resolve(clock.advance(ms)),
  });
});

const zadd = (key: string, member: string, score: number, ttlMs: number): WindowOp => ({
  op: "zadd",
  key,
  member,
  score,
  ttlMs,
});

Deno.test("MemoryWindowStore: a key expires exactly ttlMs after its last zadd", async () => {
  const clock = fakeClock();
  const store = new MemoryWindowStore({ now: clock.now });
  await store.run([zadd("k", "a", 1, 1000)]);
  clock.advance(600);
  await store.run([zadd("k", "b", 2, 1000)]); // refreshes: now expires at 1600
  clock.advance(999);
  assert.equal(store.pttl("k"), 1);
  assert.deepEqual(await store.run([{ op: "zcount", key: "k", min: 0, max: 2 }]), [2]);
  clock.advance(1);
  assert.equal(store.pttl("k"), -2);
  assert.deepEqual(await store.run([{ op: "zcount", key: "k", min: 0, max: 2 }]), [0]);
  // Expired members do not come back with the next zadd.
  await store.run([zadd("k", "c", 3, 1000)]);
  assert.deepEqual(await store.run([{ op: "zcount", key: "k", min: 0, max: 3 }]), [1]);
});

Deno.test("MemoryWindowStore: a held claim is not extended and expires on time", async () => {
  const clock = fakeClock();
  const store = new MemoryWindowStore({ now: clock.now });
  const claim = (value: string): WindowOp => ({ op: "claim", key: "c", value, ttlMs: 1000 });
  assert.deepEqual(await store.run([claim("a")]), ["a"]);
  clock.advance(999);
  assert.deepEqual(await store.run([claim("b")]), ["a"]);
  clock.advance(1);
  assert.deepEqual(await store.run([claim("b")]), ["b"]);
});

Deno.test("MemoryWindowStore: never holds more than maxKeys keys", async () => {
  const store = new MemoryWindowStore({ maxKeys: 100 });
  for (let batch = 0; batch < 10; batch++) {
    const ops = Array.from({ length: 50 }, (_, i) => zadd(`k${batch * 50 + i}`, "m", 1, 60_000));
    await store.run(ops);
    assert.ok(store.size <= 100, `size ${store.size}`);
  }
  assert.equal(store.size, 100);
  // The least recently written keys went first; the newest are all there.
  const counts = await store.run(
    ["k0", "k399", "k400", "k499"].map((key): WindowOp => ({ op: "zcount", key, min: 0, max: 1 })),
  );
  assert.deepEqual(counts, [0, 0, 1, 1]);
});

Deno.test("MemoryWindowStore: a zadd makes its key the newest for eviction", async () => {
  const store = new MemoryWindowStore({ maxKeys: 3 });
  await store.run(["a", "b", "c"].map((key) => zadd(key, "m", 1, 60_000)));
  await store.run([zadd("a", "m2", 2, 60_000), zadd("d", "m", 1, 60_000)]);
  const counts = await store.run(
    ["a", "b", "c", "d"].map((key): WindowOp => ({ op: "zcount", key, min: 0, max: 2 })),
  );
  assert.deepEqual(counts, [2, 0, 1, 1]);
});

Deno.test("MemoryWindowStore: writes sweep expired keys before evicting live ones", async () => {
  const clock = fakeClock();
  const store = new MemoryWindowStore({ maxKeys: 10, now: clock.now });
  await store.run(Array.from({ length: 3 }, (_, i) => zadd(`short${i}`, "m", 1, 100)));
  await store.run(Array.from({ length: 5 }, (_, i) => zadd(`long${i}`, "m", 1, 60_000)));
  clock.advance(100);
  await store.run([zadd("new", "m", 1, 60_000)]);
  assert.equal(store.size, 6);
});

Deno.test("MemoryWindowStore: keep bounds a window of thousands of members", async () => {
  const store = new MemoryWindowStore();
  const t0 = 1_700_000_000_000;
  for (let batch = 0; batch < 20; batch++) {
    const ops = Array.from({ length: 500 }, (_, i): WindowOp[] => {
      const at = t0 + batch * 500 + i;
      return [
        { op: "zadd", key: "u", member: `e${at}`, score: at, ttlMs: 60_000, keep: 5000 },
        { op: "zcount", key: "u", min: at - 3000, max: at },
      ];
    }).flat();
    await store.run(ops);
  }
  // 10 000 adds, the newest 5 000 kept (speed is measured by `deno task bench`, not here).
  assert.deepEqual(await store.run([{ op: "zcount", key: "u", min: 0, max: Infinity }]), [5000]);
});

Deno.test("MemoryWindowStore: rejects after close() and checks its options", async () => {
  const store = new MemoryWindowStore();
  await store.close();
  await assert.rejects(store.run([]), /closed/);
  await assert.rejects(store.ping(), /closed/);
  assert.throws(() => new MemoryWindowStore({ maxKeys: 0 }), RangeError);
});
