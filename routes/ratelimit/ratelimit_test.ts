/**
 * Unit tests of the rate limiters: the contract on {@link MemoryRateLimiter}, its memory bound,
 * and {@link RateLimitGuard}'s failure policy, against a stub and against `UpstashRateLimiter`
 * pointed at a closed port (no service needed). The contract on Redis is in
 * `tests/upstash_ratelimit_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { rateLimiterContract } from "../../tests/rate_limiter_contract.ts";
import { createLogger } from "../../shared/logger.ts";
import {
  type DegradedEvent,
  MemoryRateLimiter,
  type RateLimitDecision,
  type RateLimiter,
  RateLimitGuard,
} from "./ratelimit.ts";
import { UpstashRateLimiter } from "./upstash.ts";

const T0 = 1_700_000_000_000;

rateLimiterContract("MemoryRateLimiter", () => {
  let clock = T0;
  return Promise.resolve({
    limiter: (limit, windowMs) => new MemoryRateLimiter({ limit, windowMs, now: () => clock }),
    now: () => clock,
    waitUntil: (at) => {
      clock = Math.max(clock, at);
      return Promise.resolve();
    },
    cleanup: () => Promise.resolve(),
  });
});

Deno.test("MemoryRateLimiter keeps at most maxKeys keys, dropping the least recently used", async () => {
  const limiter = new MemoryRateLimiter({ limit: 1, windowMs: 60_000, maxKeys: 2, now: () => T0 });
  await limiter.limit("a");
  await limiter.limit("b");
  assert.equal((await limiter.limit("a")).allowed, false); // a is now the most recent
  await limiter.limit("c"); // drops b
  assert.equal(limiter.size, 2);
  assert.equal((await limiter.limit("a")).allowed, false);
  assert.equal((await limiter.limit("b")).allowed, true); // forgotten, so counted afresh
});

Deno.test("MemoryRateLimiter rejects a limit or window that is not a positive integer", () => {
  assert.throws(() => new MemoryRateLimiter({ limit: 0, windowMs: 1000 }), /limit must be/);
  assert.throws(() => new MemoryRateLimiter({ limit: 1, windowMs: 1.5 }), /windowMs must be/);
  assert.throws(
    () => new MemoryRateLimiter({ limit: 1, windowMs: 1000, maxKeys: 0 }),
    /maxKeys must be/,
  );
});

/** A limiter that fails while `down` is set, and counts its calls. */
class FlakyLimiter implements RateLimiter {
  readonly kind = "flaky";
  readonly policy = { limit: 5, windowMs: 10_000 };
  down = true;
  calls = 0;
  limit(): Promise<RateLimitDecision> {
    this.calls++;
    if (this.down) return Promise.reject(new Error("connection refused"));
    return Promise.resolve({ allowed: true, limit: 5, remaining: 4, resetAt: T0 + 10_000 });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

Deno.test("RateLimitGuard.check() applies the failure policy while the store is down", async (t) => {
  for (const failure of ["open", "closed"] as const) {
    await t.step(`failure: "${failure}"`, async () => {
      let clock = T0;
      const events: DegradedEvent[] = [];
      const store = new FlakyLimiter();
      const guard = new RateLimitGuard(store, {
        failure,
        cooldownMs: 1000,
        onDegraded: (event) => events.push(event),
        now: () => clock,
      });
      assert.deepEqual(await guard.check("key:a"), {
        checked: false,
        policy: failure,
        retryAt: T0 + 1000,
      });
      assert.equal(guard.degraded, true);
      assert.deepEqual(events.map((e) => [e.policy, e.error.message]), [
        [failure, "connection refused"],
      ]);

      // Within the cooldown the store is not asked: no request waits for a dead store.
      clock += 999;
      assert.equal((await guard.check("key:a")).checked, false);
      assert.equal(store.calls, 1);
      assert.equal(events.length, 2);

      // After it, the store is asked again, and its answer counts as soon as it gives one.
      clock += 1;
      store.down = false;
      const verdict = await guard.check("key:a");
      assert.equal(verdict.checked, true);
      assert.equal(store.calls, 2);
      assert.equal(guard.degraded, false);
      assert.equal(events.length, 2);
    });
  }
});

Deno.test("RateLimitGuard logs an outage once and its end once, and survives a throwing hook", async () => {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (_level, line) => lines.push(line) });
  let clock = T0;
  const store = new FlakyLimiter();
  const guard = new RateLimitGuard(store, {
    cooldownMs: 0,
    logger,
    now: () => clock++,
    onDegraded: () => {
      throw new Error("metrics broke");
    },
  });
  for (let i = 0; i < 3; i++) assert.equal((await guard.check("key:a")).checked, false);
  store.down = false;
  assert.equal((await guard.check("key:a")).checked, true);
  assert.deepEqual(lines.map((line) => JSON.parse(line).msg), [
    "Rate limit store failed; failing open until it answers again",
    "Rate limit store answers again",
  ]);
});

Deno.test("RateLimitGuard rejects an unknown failure policy", () => {
  assert.throws(
    () => new RateLimitGuard(new FlakyLimiter(), { failure: "maybe" as "open" }),
    /failure must be "open" or "closed", got "maybe"/,
  );
});

/** A port nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test("UpstashRateLimiter rejects when Redis is unreachable, and the guard fails open or closed", async (t) => {
  const token = "token-that-must-not-leak-0123456789";
  const limiter = new UpstashRateLimiter({
    url: `http://127.0.0.1:${closedPort()}`,
    token,
    limit: 10,
    windowMs: 10_000,
    timeoutMs: 500,
  });
  await assert.rejects(limiter.limit("key:a"), (error: Error) => {
    assert.match(error.message, /^Upstash rate limiter: /);
    assert.ok(!error.message.includes(token));
    return true;
  });
  for (const failure of ["open", "closed"] as const) {
    await t.step(`failure: "${failure}"`, async () => {
      const lines: string[] = [];
      const logger = createLogger({ level: "debug", write: (_level, line) => lines.push(line) });
      let degraded = 0;
      const guard = new RateLimitGuard(limiter, {
        failure,
        logger,
        onDegraded: () => degraded++,
      });
      const verdict = await guard.check("key:a");
      assert.equal(verdict.checked, false);
      assert.equal(verdict.checked === false && verdict.policy, failure);
      assert.equal(degraded, 1);
      assert.equal(lines.length, 1);
      assert.ok(!lines[0]!.includes(token));
    });
  }
});

Deno.test("UpstashRateLimiter rejects bad options without echoing the token", () => {
  const base = { url: "http://127.0.0.1:8079", token: "secret-token-0123456789", limit: 1 };
  assert.throws(() => new UpstashRateLimiter({ ...base, windowMs: 0 }), /windowMs must be/);
  assert.throws(
    () => new UpstashRateLimiter({ ...base, token: "", windowMs: 1000 }),
    /url and token are required/,
  );
  assert.throws(
    () => new UpstashRateLimiter({ ...base, windowMs: 1000, timeoutMs: 0 }),
    /timeoutMs must be/,
  );
});
