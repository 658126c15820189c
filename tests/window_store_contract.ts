/**
 * The contract every {@link WindowStore} keeps: Redis semantics for the few sorted-set and key ops
 * the fraud rules use. {@link windowStoreContract} registers the same `Deno.test` cases for any
 * store, so the embedded store and the Redis one cannot drift apart.
 *
 * jsr: is not reachable on these machines, so assertions use node:assert.
 *
 * @module
 */
import { registerContract } from "./contract.ts";
import assert from "node:assert/strict";
import type { Scored, WindowOp, WindowResult, WindowStore } from "../pipeline/fraud/windows.ts";

/** What a contract test gets from the store under test; `make()` returns a fresh one per test. */
export interface WindowStoreFixture {
  store: WindowStore;
  /** Unique key prefix for this test: keys under it belong to the test alone. */
  prefix: string;
  /** Called after the test, pass or fail: deletes the keys, closes what was opened. */
  cleanup: () => Promise<void>;
  /** Like Redis PTTL: ms until `key` expires, -1 without a TTL, -2 when it does not exist. */
  pttl: (key: string) => Promise<number>;
  /** Lets `ms` pass for the store's TTLs (sleeps for a server, moves an injected clock). */
  advance: (ms: number) => Promise<void>;
}

type Make = () => Promise<WindowStoreFixture>;

const TTL = 60_000;
const T0 = 1_700_000_000_000;

/** Registers the contract tests for the store `make()` builds, named `<name>: …`. */
export function windowStoreContract(name: string, make: Make): void {
  registerContract(name, CASES, make);
}

/** Runs `ops` and returns the results, checking there is one per op. */
async function run(store: WindowStore, ops: WindowOp[]): Promise<WindowResult[]> {
  const results = await store.run(ops);
  assert.equal(results.length, ops.length);
  return results;
}

const zadd = (
  key: string,
  member: string,
  score: number,
  extra: { nx?: true; keep?: number; minScore?: number; ttlMs?: number } = {},
): WindowOp => ({ op: "zadd", key, member, score, ttlMs: TTL, ...extra });
const zcount = (key: string, min: number, max: number): WindowOp => ({
  op: "zcount",
  key,
  min,
  max,
});
const zrange = (key: string, min: number, max: number, limit: number): WindowOp => ({
  op: "zrange",
  key,
  min,
  max,
  limit,
});
const zlast = (key: string, max: number): WindowOp => ({ op: "zlast", key, max });
const claim = (key: string, value: string, ttlMs = TTL): WindowOp => ({
  op: "claim",
  key,
  value,
  ttlMs,
});
const all = (key: string, limit = 1000) => zrange(key, -Infinity, Infinity, limit);
const scored = (...pairs: [string, number][]): Scored[] =>
  pairs.map(([member, score]) => ({ member, score }));

const CASES: Record<string, (fixture: WindowStoreFixture) => Promise<void>> = {
  async "an empty run resolves to []"({ store }) {
    assert.deepEqual(await store.run([]), []);
  },

  async "ping() and the kind"({ store }) {
    await store.ping();
    assert.ok(store.kind === "memory" || store.kind === "upstash", store.kind);
  },

  async "zadd of the same member twice counts once"({ store, prefix }) {
    const k = `${prefix}z`;
    assert.deepEqual(
      await run(store, [zadd(k, "e1", T0), zadd(k, "e1", T0), zcount(k, -Infinity, Infinity)]),
      [null, null, 1],
    );
    // A re-delivered batch changes nothing.
    assert.deepEqual(await run(store, [zadd(k, "e1", T0), zcount(k, 0, Infinity)]), [null, 1]);
  },

  async "zadd moves a member to its new score, unless nx"({ store, prefix }) {
    const k = `${prefix}z`;
    await run(store, [zadd(k, "a", 10), zadd(k, "b", 20)]);
    await run(store, [zadd(k, "a", 30)]);
    assert.deepEqual(await run(store, [all(k)]), [scored(["b", 20], ["a", 30])]);
    await run(store, [zadd(k, "a", 5, { nx: true }), zadd(k, "c", 25, { nx: true })]);
    assert.deepEqual(await run(store, [all(k)]), [scored(["b", 20], ["c", 25], ["a", 30])]);
  },

  async "zcount has an exclusive min and an inclusive max"({ store, prefix }) {
    const k = `${prefix}z`;
    await run(store, [zadd(k, "a", 10), zadd(k, "b", 20), zadd(k, "c", 30)]);
    assert.deepEqual(
      await run(store, [
        zcount(k, 10, 30),
        zcount(k, 9, 30),
        zcount(k, 10, 29.5),
        zcount(k, 20, 20),
        zcount(k, 30, 10),
        zcount(k, -Infinity, Infinity),
        zcount(k, -Infinity, 10),
        zcount(k, 30, Infinity),
        zcount(`${prefix}missing`, -Infinity, Infinity),
      ]),
      [2, 3, 1, 0, 0, 3, 1, 0, 0],
    );
  },

  async "zrange is ascending, within (min, max], ties ordered by member"({ store, prefix }) {
    const k = `${prefix}z`;
    await run(store, [
      zadd(k, "x", 5),
      zadd(k, "b", 5),
      zadd(k, "a", 5),
      zadd(k, "c", 7),
      zadd(k, "d", 1),
    ]);
    assert.deepEqual(await run(store, [zrange(k, 1, 7, 10), zrange(k, 0, 5, 10)]), [
      scored(["a", 5], ["b", 5], ["x", 5], ["c", 7]),
      scored(["d", 1], ["a", 5], ["b", 5], ["x", 5]),
    ]);
    assert.deepEqual(
      await run(store, [zrange(k, 7, 1, 10), zrange(k, 7, Infinity, 10), all(`${prefix}none`)]),
      [[], [], []],
    );
  },

  async "zrange with a limit keeps the highest-scored members"({ store, prefix }) {
    const k = `${prefix}z`;
    await run(store, [
      zadd(k, "x", 5),
      zadd(k, "b", 5),
      zadd(k, "a", 5),
      zadd(k, "c", 7),
      zadd(k, "d", 1),
    ]);
    assert.deepEqual(
      await run(store, [
        zrange(k, -Infinity, Infinity, 2),
        zrange(k, -Infinity, 5, 2),
        zrange(k, 0, 6, 1),
        zrange(k, -Infinity, Infinity, 0),
      ]),
      [
        scored(["x", 5], ["c", 7]),
        scored(["b", 5], ["x", 5]),
        scored(["x", 5]),
        [],
      ],
    );
  },

  async "members are ordered byte-wise on their UTF-8, like Redis"({ store, prefix }) {
    const k = `${prefix}z`;
    // UTF-8 byte order is code point order: "～" (U+FF5E) sorts before "🌍" (U+1F30D), although
    // its UTF-16 code unit is above the surrogate pair's.
    const members = ["🌍", "\uff5e", "é", "z", "Z", "zz", ""];
    await run(store, members.map((m) => zadd(k, m, 1)));
    const [range] = await run(store, [all(k)]);
    assert.deepEqual(
      range,
      scored(["", 1], ["Z", 1], ["z", 1], ["zz", 1], ["é", 1], ["\uff5e", 1], [
        "🌍",
        1,
      ]),
    );
  },

  async "members and scores round-trip exactly"({ store, prefix }) {
    const k = `${prefix}z`;
    const members: [string, number][] = [
      ['{"event_id":"e1","amount":12.5}', -5],
      ["123", 0.1],
      ["OK", 1],
      ["null", 2.5],
      ["héllo wörld 🌍", T0 + 0.5],
      ["[1,2]", 1e21],
    ];
    await run(store, members.map(([m, s]) => zadd(k, m, s)));
    assert.deepEqual(await run(store, [all(k), zlast(k, Infinity), zlast(k, 1e20)]), [
      scored(...members),
      1e21,
      T0 + 0.5,
    ]);
  },

  async "zlast is the highest score at or below max, or null"({ store, prefix }) {
    const k = `${prefix}z`;
    assert.deepEqual(await run(store, [zlast(k, Infinity)]), [null]);
    await run(store, [zadd(k, "a", 10), zadd(k, "b", 20), zadd(k, "c", 30)]);
    assert.deepEqual(
      await run(store, [zlast(k, Infinity), zlast(k, 25), zlast(k, 20), zlast(k, 9.99)]),
      [30, 20, 20, null],
    );
  },

  async "keep trims to the highest-scored members"({ store, prefix }) {
    const k = `${prefix}z`;
    await run(store, [1, 2, 3, 4, 5].map((s) => zadd(k, `m${s}`, s, { keep: 3 })));
    assert.deepEqual(await run(store, [all(k)]), [scored(["m3", 3], ["m4", 4], ["m5", 5])]);
    // An older member than all kept ones is added, then trimmed away at once.
    await run(store, [zadd(k, "m0", 0, { keep: 3 })]);
    assert.deepEqual(await run(store, [zcount(k, -Infinity, Infinity), zlast(k, 2)]), [3, null]);
    // Among equal scores, the lowest members (byte-wise) go first.
    const t = `${prefix}ties`;
    await run(store, ["c", "a", "b"].map((m) => zadd(t, m, 1, { keep: 2 })));
    assert.deepEqual(await run(store, [all(t)]), [scored(["b", 1], ["c", 1])]);
    // keep: 0 empties (and so deletes) the key.
    await run(store, [zadd(t, "d", 2, { keep: 0 })]);
    assert.deepEqual(await run(store, [all(t), zlast(t, Infinity)]), [[], null]);
  },

  async "minScore trims members scored below it"({ store, prefix }) {
    const k = `${prefix}z`;
    await run(store, [1, 2, 3, 4, 5].map((s) => zadd(k, `m${s}`, s)));
    await run(store, [zadd(k, "m6", 6, { minScore: 3 })]);
    assert.deepEqual(await run(store, [all(k)]), [
      scored(["m3", 3], ["m4", 4], ["m5", 5], ["m6", 6]),
    ]);
    // A member older than minScore is dropped as soon as it is added.
    await run(store, [zadd(k, "old", 1, { minScore: 3 })]);
    assert.deepEqual(await run(store, [zcount(k, -Infinity, Infinity)]), [4]);
    // Both at once: members at or above minScore, then the `keep` highest of them.
    await run(store, [zadd(k, "m7", 7, { minScore: 4, keep: 2 })]);
    assert.deepEqual(await run(store, [all(k)]), [scored(["m6", 6], ["m7", 7])]);
  },

  async "claim returns its own value first, then the value held"({ store, prefix }) {
    const k = `${prefix}cooldown`;
    assert.deepEqual(
      await run(store, [claim(k, "alert-1"), claim(k, "alert-2"), claim(k, "alert-1")]),
      ["alert-1", "alert-1", "alert-1"],
    );
    assert.deepEqual(await run(store, [claim(k, "alert-3")]), ["alert-1"]);
    assert.deepEqual(await run(store, [claim(`${prefix}other`, "")]), [""]);
  },

  async "zadd sets and refreshes the TTL, claim only when it sets"({ store, prefix, pttl }) {
    const z = `${prefix}z`;
    const c = `${prefix}c`;
    assert.equal(await pttl(z), -2);
    await run(store, [zadd(z, "a", 1, { ttlMs: 30_000 }), claim(c, "v", 30_000)]);
    assertTtl(await pttl(z), 30_000);
    assertTtl(await pttl(c), 30_000);
    // Every zadd refreshes it, even one that changes nothing (nx, same member).
    await run(store, [zadd(z, "a", 2, { ttlMs: 90_000, nx: true }), claim(c, "w", 90_000)]);
    assertTtl(await pttl(z), 90_000, 60_000);
    assertTtl(await pttl(c), 30_000);
  },

  async "keys expire after their TTL"({ store, prefix, advance }) {
    const z = `${prefix}z`;
    const c = `${prefix}c`;
    await run(store, [zadd(z, "a", 1, { ttlMs: 300 }), claim(c, "first", 300)]);
    assert.deepEqual(await run(store, [zcount(z, 0, 1), claim(c, "second", 300)]), [1, "first"]);
    await advance(500);
    assert.deepEqual(
      await run(store, [zcount(z, 0, 1), all(z), zlast(z, Infinity), claim(c, "second", TTL)]),
      [0, [], null, "second"],
    );
  },

  async "ops in one run see the earlier ops of the run"({ store, prefix }) {
    const k = `${prefix}z`;
    const c = `${prefix}c`;
    assert.deepEqual(
      await run(store, [
        zcount(k, -Infinity, Infinity),
        zadd(k, "a", 1),
        zcount(k, -Infinity, Infinity),
        zadd(k, "b", 2, { keep: 1 }),
        zcount(k, -Infinity, Infinity),
        all(k),
        zlast(k, Infinity),
        claim(c, "x"),
        claim(c, "y"),
      ]),
      [0, null, 1, null, 1, scored(["b", 2]), 2, "x", "x"],
    );
  },

  async "a large batch keeps its results in order"({ store, prefix }) {
    const ops = Array.from({ length: 500 }, (_, i) => [
      zadd(`${prefix}u${i % 7}`, `e${i}`, T0 + i, { keep: 50, minScore: T0 }),
      zcount(`${prefix}u${i % 7}`, T0 - 1, T0 + i),
    ]).flat();
    const results = await run(store, ops);
    const expected = Array.from(
      { length: 500 },
      (_, i) => [null, Math.min(50, 1 + (i - i % 7) / 7)],
    )
      .flat();
    assert.deepEqual(results, expected);
  },

  async "an op on a key of the other type rejects"({ store, prefix }) {
    const z = `${prefix}z`;
    const c = `${prefix}c`;
    await run(store, [zadd(z, "a", 1), claim(c, "v")]);
    await assert.rejects(store.run([claim(z, "v")]), /WRONGTYPE/);
    await assert.rejects(store.run([zadd(c, "a", 1)]), /WRONGTYPE/);
    await assert.rejects(store.run([zcount(c, 0, 1)]), /WRONGTYPE/);
    // The keys are untouched.
    assert.deepEqual(await run(store, [all(z), claim(c, "w")]), [scored(["a", 1]), "v"]);
  },

  async "an invalid op rejects the whole batch before it runs"({ store, prefix }) {
    const k = `${prefix}z`;
    const invalid: WindowOp[] = [
      zadd(k, "a", NaN),
      zadd(k, "a", Infinity),
      zadd(k, "a", 1, { ttlMs: 0 }),
      zadd(k, "a", 1, { ttlMs: 1.5 }),
      zadd(k, "a", 1, { keep: -1 }),
      zadd(k, "a", 1, { minScore: NaN }),
      zcount(k, NaN, 1),
      zrange(k, 0, 1, -1),
      zlast(k, NaN),
      claim(`${prefix}c`, "v", 0),
    ];
    for (const op of invalid) {
      await assert.rejects(store.run([zadd(k, "first", 1), op]), RangeError, JSON.stringify(op));
    }
    assert.deepEqual(await run(store, [zcount(k, -Infinity, Infinity)]), [0]);
  },
};

/** Asserts a PTTL reply is a live TTL of at most `max` ms (and above `min`, when given). */
function assertTtl(ms: number, max: number, min = max - 10_000): void {
  assert.ok(ms > min && ms <= max, `PTTL ${ms} not in (${min}, ${max}]`);
}
