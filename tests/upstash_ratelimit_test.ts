/**
 * Tests of `UpstashRateLimiter` (`@upstash/ratelimit`) through the Upstash REST bridge in front
 * of the real Redis on 127.0.0.1:6379: the rate limiter contract, and the failure policy over HTTP
 * when the bridge stops or hangs. They fail (never skip) when Redis is unreachable: starting the
 * bridge pings it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { RateLimitGuard } from "../routes/ratelimit/ratelimit.ts";
import { UpstashRateLimiter } from "../routes/ratelimit/upstash.ts";
import { apiKeyAuth } from "../routes/auth/api_key_auth.ts";
import { rateLimit } from "../routes/ratelimit/middleware.ts";
import { startUpstashBridge } from "./fixtures/upstash_bridge.ts";
import { rateLimiterContract } from "./rate_limiter_contract.ts";

rateLimiterContract("UpstashRateLimiter", async () => {
  const bridge = await startUpstashBridge({ token: crypto.randomUUID() });
  const prefix = `ratelimit-test:${crypto.randomUUID()}`;
  return {
    limiter: (limit, windowMs) =>
      new UpstashRateLimiter({ url: bridge.url, token: bridge.token, limit, windowMs, prefix }),
    now: () => Date.now(),
    waitUntil: (at) => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now()))),
    // Every key expires two windows and a second after its last write.
    cleanup: () => bridge.close(),
  };
});

Deno.test("UpstashRateLimiter counts one REST call per check and shares counts between instances", async () => {
  const paths: string[] = [];
  const bridge = await startUpstashBridge({
    token: crypto.randomUUID(),
    onRequest: (info) => paths.push(info.path),
  });
  try {
    const options = {
      url: bridge.url,
      token: bridge.token,
      limit: 3,
      windowMs: 60_000,
      prefix: `ratelimit-test:${crypto.randomUUID()}`,
    };
    const one = new UpstashRateLimiter(options);
    const two = new UpstashRateLimiter(options); // another gateway
    await one.limit("key:a"); // EVALSHA → NOSCRIPT → EVAL, unless another test loaded the script
    paths.length = 0;
    await one.limit("key:a");
    assert.deepEqual(paths, ["/"]);
    const third = await two.limit("key:a");
    assert.equal(third.remaining, 0);
    assert.equal((await two.limit("key:a")).allowed, false);
    // A refused key is remembered until its window ends: no REST call for it.
    paths.length = 0;
    assert.equal((await two.limit("key:a")).allowed, false);
    assert.deepEqual(paths, []);
  } finally {
    await bridge.close();
  }
});

const KEYS = [
  { name: "ingest", secret: "ingest-secret-0123456789" },
  { name: "backfill", secret: "backfill-secret-0123456789" },
];

/** An app whose `POST /events` needs a key and counts against `guard`. */
function app(guard: RateLimitGuard) {
  const app = new Hono();
  app.use("/events", apiKeyAuth({ keys: KEYS }), rateLimit({ guard }));
  app.post("/events", (c) => c.json({ accepted: 1 }, 202));
  return app;
}

const post = (app: Hono, secret = KEYS[0]!.secret) =>
  app.request("/events", {
    method: "POST",
    headers: { authorization: `Bearer ${secret}` },
    body: "{}",
  });

Deno.test("rateLimit() over Redis answers 429, then fails open or closed once the bridge stops", async (t) => {
  for (const failure of ["open", "closed"] as const) {
    await t.step(`failure: "${failure}"`, async () => {
      const bridge = await startUpstashBridge({ token: crypto.randomUUID() });
      let closed = false;
      try {
        const degraded: string[] = [];
        const guard = new RateLimitGuard(
          new UpstashRateLimiter({
            url: bridge.url,
            token: bridge.token,
            limit: 2,
            windowMs: 60_000,
            prefix: `ratelimit-test:${crypto.randomUUID()}`,
          }),
          // Every request after the outage asks the store again.
          { failure, cooldownMs: 0, onDegraded: (event) => degraded.push(event.policy) },
        );
        const gateway = app(guard);
        assert.equal((await post(gateway)).status, 202);
        assert.equal((await post(gateway)).status, 202);
        const limited = await post(gateway);
        assert.equal(limited.status, 429);
        assert.ok(Number(limited.headers.get("retry-after")) >= 1);
        assert.equal(limited.headers.get("ratelimit-remaining"), "0");
        assert.equal((await limited.json()).error.code, "rate_limited");
        assert.deepEqual(degraded, []);

        await bridge.close();
        closed = true;
        // The other key needs Redis: the policy decides.
        const res = await post(gateway, KEYS[1]!.secret);
        if (failure === "open") {
          assert.equal(res.status, 202);
          assert.equal(res.headers.get("ratelimit-limit"), null);
        } else {
          assert.equal(res.status, 503);
          assert.equal(res.headers.get("retry-after"), "1");
          assert.equal((await res.json()).error.code, "rate_limit_unavailable");
        }
        assert.deepEqual(degraded, [failure]);
        // The refused key is remembered in memory until its window ends, Redis or not.
        assert.equal((await post(gateway)).status, 429);
      } finally {
        if (!closed) await bridge.close();
      }
    });
  }
});

Deno.test("UpstashRateLimiter gives up after timeoutMs when Redis hangs, and the guard fails closed", async () => {
  const hung = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async () => {
      await hung.promise;
      return new Response("[]");
    },
  );
  try {
    const guard = new RateLimitGuard(
      new UpstashRateLimiter({
        url: `http://127.0.0.1:${server.addr.port}`,
        token: "t",
        limit: 2,
        windowMs: 10_000,
        timeoutMs: 200,
      }),
      { failure: "closed" },
    );
    const started = performance.now();
    const res = await post(app(guard));
    const took = performance.now() - started;
    assert.equal(res.status, 503);
    assert.ok(took >= 150 && took < 2000, `took ${took} ms`);
    // Within the cooldown, the next request does not wait at all.
    const again = performance.now();
    assert.equal((await post(app(guard))).status, 503);
    assert.ok(performance.now() - again < 100);
  } finally {
    hung.resolve();
    await server.shutdown();
  }
});
