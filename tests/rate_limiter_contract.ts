/**
 * The contract every {@link RateLimiter} keeps: `@upstash/ratelimit`'s sliding window.
 * {@link rateLimiterContract} registers the same `Deno.test` cases for any limiter, so the
 * in-memory limiter and the Redis one cannot drift apart.
 *
 * Times are chosen inside a window (`at(window, fraction)`), so that a limiter on real time
 * (Redis) gives the same answers as one on a fake clock; the fractions keep the weighted count
 * away from integer boundaries, where a few ms of drift would change it.
 *
 * @module
 */
import { registerContract } from "./contract.ts";
import assert from "node:assert/strict";
import type { RateLimiter } from "../routes/ratelimit/ratelimit.ts";

/** What a contract test gets; `make()` returns a fresh one per test. */
export interface RateLimiterFixture {
  /** A limiter of `limit` requests per `windowMs`, whose keys no other test uses. */
  limiter(limit: number, windowMs: number): RateLimiter;
  /** The limiter's clock, in ms since the epoch. */
  now(): number;
  /** Lets the limiter's clock reach `at` (sleeps for a server, sets an injected clock). */
  waitUntil(at: number): Promise<void>;
  /** Called after the test, pass or fail. */
  cleanup(): Promise<void>;
}

type Make = () => Promise<RateLimiterFixture>;

/** Window length of the cases: long enough for a few requests to a server to fit in 10 % of it. */
const WINDOW = 1000;

/** Registers the contract tests for the limiter `make()` builds, named `<name>: …`. */
export function rateLimiterContract(name: string, make: Make): void {
  registerContract(name, CASES, make);
}

/** The start of the next window (at least 20 ms ahead), plus `fraction` of a window. */
function nextWindow(f: RateLimiterFixture, fraction = 0.02): number {
  const start = (Math.floor((f.now() + 20) / WINDOW) + 1) * WINDOW;
  return start + Math.round(fraction * WINDOW);
}

const CASES: Record<string, (f: RateLimiterFixture) => Promise<void>> = {
  async "allows `limit` requests in a window, then refuses until it ends"(f) {
    const limiter = f.limiter(3, WINDOW);
    const start = nextWindow(f);
    await f.waitUntil(start);
    const resetAt = Math.floor(start / WINDOW) * WINDOW + WINDOW;
    for (const remaining of [2, 1, 0]) {
      assert.deepEqual(await limiter.limit("a"), { allowed: true, limit: 3, remaining, resetAt });
    }
    assert.deepEqual(await limiter.limit("a"), {
      allowed: false,
      limit: 3,
      remaining: 0,
      resetAt,
    });
    assert.deepEqual(limiter.policy, { limit: 3, windowMs: WINDOW });
  },

  async "counts every key on its own"(f) {
    const limiter = f.limiter(1, WINDOW);
    await f.waitUntil(nextWindow(f));
    assert.equal((await limiter.limit("a")).allowed, true);
    assert.equal((await limiter.limit("a")).allowed, false);
    assert.equal((await limiter.limit("b")).allowed, true);
    assert.equal((await limiter.limit("key:a")).allowed, true);
  },

  async "weighs the previous window by how much of it is still in the sliding window"(f) {
    const limiter = f.limiter(4, WINDOW);
    await f.waitUntil(nextWindow(f));
    for (let i = 0; i < 4; i++) assert.equal((await limiter.limit("a")).allowed, true);
    // Refused requests are not counted: these change nothing below.
    for (let i = 0; i < 3; i++) assert.equal((await limiter.limit("a")).allowed, false);
    // 62.5 % into the next window, 37.5 % of the 4 previous requests count: floor(1.5) = 1.
    await f.waitUntil(nextWindow(f, 0.625));
    const remaining: number[] = [];
    for (let i = 0; i < 4; i++) {
      const decision = await limiter.limit("a");
      if (decision.allowed) remaining.push(decision.remaining);
    }
    assert.deepEqual(remaining, [2, 1, 0]);
  },

  async "starts a key afresh once two windows have passed"(f) {
    const limiter = f.limiter(2, WINDOW);
    await f.waitUntil(nextWindow(f));
    await limiter.limit("a");
    await limiter.limit("a");
    assert.equal((await limiter.limit("a")).allowed, false);
    await f.waitUntil(nextWindow(f) + WINDOW);
    const decision = await limiter.limit("a");
    assert.equal(decision.allowed, true);
    assert.equal(decision.remaining, 1);
  },
};
