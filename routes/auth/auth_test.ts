/**
 * In-process tests of `apiKeyAuth()` and `rateLimit()` on a Hono app built like `createApp()`
 * (request ids, the error mapping), with a route that reads the body as `POST /events` does.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { readBody } from "../body.ts";
import { createLogger, type Logger, silentLogger } from "../../shared/logger.ts";
import {
  MemoryRateLimiter,
  type RateLimitDecision,
  type RateLimiter,
  RateLimitGuard,
} from "../ratelimit/ratelimit.ts";
import type { MiddlewareHandler } from "hono";
import { type ApiKey, parseApiKeys } from "./api_keys.ts";
import { apiKeyAuth, type ApiKeyAuthOptions, type AuthEnv } from "./api_key_auth.ts";
import { parseSignature, signBody } from "./signature.ts";
import { rateLimit } from "../ratelimit/middleware.ts";
import { Ingestor } from "../../pipeline/ingest.ts";
import type { DeadLetterSink, EventLog } from "../../pipeline/durable_log.ts";
import type { Envelope } from "../../shared/schemas.ts";
import { errorHandler } from "../errors.ts";
import { eventRoutes } from "../events.ts";

const INGEST: ApiKey = { name: "ingest", secret: "Hq3vT9xKp2Lw8Zr5Nc7Ym4Bd" };
const BACKFILL: ApiKey = { name: "backfill", secret: "Js6Fu1Qe0Wa9Gt3Vk8Po2Xh" };
const KEYS = [INGEST, BACKFILL];
const MAX_BODY = 1024;
/** The server's clock in the tests: 2023-11-14T22:13:20Z. */
const NOW_S = 1_700_000_000;

interface Built {
  app: Hono;
  /** What the route saw, per request. */
  seen: { apiKey: string | undefined; body: string }[];
}

/** An app with `POST /events` behind `apiKeyAuth(options)` (and `extra` middleware after it). */
function build(
  options: Partial<ApiKeyAuthOptions> = {},
  logger: Logger = silentLogger,
  ...extra: MiddlewareHandler<AuthEnv>[]
): Built {
  const seen: Built["seen"] = [];
  const app = new Hono<{ Variables: { requestId: string; apiKey: string } }>();
  app.use(requestId());
  app.onError(errorHandler(logger));
  app.use(
    "/events",
    apiKeyAuth({ keys: KEYS, maxBodyBytes: MAX_BODY, now: () => NOW_S * 1000, logger, ...options }),
    ...extra,
  );
  app.post("/events", async (c) => {
    const bytes = await readBody(c.req.raw, MAX_BODY);
    seen.push({ apiKey: c.get("apiKey"), body: new TextDecoder().decode(bytes) });
    return c.json({ accepted: 1 }, 202);
  });
  app.get("/events", (c) => c.json({ apiKey: c.get("apiKey") }));
  return { app: app as unknown as Hono, seen };
}

const BODY = '{"type":"login","user_id":"u-1","occurred_at":"2023-11-14T22:13:20Z"}';

function post(app: Hono, headers: Record<string, string>, body: BodyInit = BODY) {
  return app.request("/events", {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
}

async function error(res: Response): Promise<Record<string, unknown>> {
  const json = await res.json();
  assert.equal(typeof json.request_id, "string");
  return json.error;
}

Deno.test("parseApiKeys() reads name:secret pairs and never puts a secret in an error", () => {
  assert.deepEqual(parseApiKeys(` ingest:${INGEST.secret} , backfill:${BACKFILL.secret},`), KEYS);
  assert.deepEqual(parseApiKeys("k:abc:def-0123456789xyz"), [
    { name: "k", secret: "abc:def-0123456789xyz" },
  ]);
  const cases: [string, RegExp][] = [
    ["", /at least one/],
    ["no-colon-secret-0123456789", /entry 1 is not name:secret/],
    [`bad name:${INGEST.secret}`, /entry 1 has a name/],
    ["short:tooshort-123", /key "short" has a secret shorter than 16/],
    [`a:${INGEST.secret},a:${BACKFILL.secret}`, /key "a" is listed twice/],
    [`a:${INGEST.secret},b:${INGEST.secret}`, /keys "a" and "b" have the same secret/],
    ["a:sécret-with-accent-0123", /non-ASCII/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseApiKeys(text), (err: Error) => {
      assert.match(err.message, message);
      for (const secret of text.split(",").map((e) => e.slice(e.indexOf(":") + 1))) {
        if (secret.length >= 8) assert.ok(!err.message.includes(secret), err.message);
      }
      return true;
    });
  }
});

Deno.test("apiKeyAuth() refuses a request without a key: 401, WWW-Authenticate, JSON error", async () => {
  const { app, seen } = build();
  const res = await post(app, {});
  assert.equal(res.status, 401);
  assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="streamgate"');
  const err = await error(res);
  assert.equal(err.code, "unauthorized");
  assert.equal(err.reason, "missing_credentials");
  assert.equal(seen.length, 0);
});

Deno.test("apiKeyAuth() refuses a wrong key", async (t) => {
  const { app, seen } = build();
  for (
    const [title, headers] of [
      ["bearer", { authorization: "Bearer wrong-secret-0123456789abcdef" }],
      ["x-api-key", { "x-api-key": "wrong" }],
      ["a prefix of a real key", { "x-api-key": INGEST.secret.slice(0, -1) }],
      ["a real key's name", { "x-api-key": INGEST.name }],
    ] as const
  ) {
    await t.step(title, async () => {
      const res = await post(app, headers);
      assert.equal(res.status, 401);
      assert.match(res.headers.get("www-authenticate")!, /error="invalid_token"/);
      assert.equal((await error(res)).reason, "invalid_credentials");
    });
  }
  assert.equal(seen.length, 0);
});

Deno.test("apiKeyAuth() lets a good key through and the route sees the key's name", async () => {
  const { app, seen } = build();
  assert.equal((await post(app, { authorization: `Bearer ${INGEST.secret}` })).status, 202);
  assert.equal((await post(app, { authorization: `bearer  ${BACKFILL.secret} ` })).status, 202);
  assert.equal((await post(app, { "x-api-key": BACKFILL.secret })).status, 202);
  assert.deepEqual(seen.map((s) => s.apiKey), ["ingest", "backfill", "backfill"]);
  assert.deepEqual(seen.map((s) => s.body), [BODY, BODY, BODY]);
  const res = await app.request("/events", { headers: { "x-api-key": INGEST.secret } });
  assert.deepEqual(await res.json(), { apiKey: "ingest" });
});

Deno.test("apiKeyAuth() needs at least one key and a known hmac mode", () => {
  assert.throws(() => apiKeyAuth({ keys: [] }), /at least one key/);
  assert.throws(() => apiKeyAuth({ keys: KEYS, hmac: "yes" as "off" }), /hmac must be/);
});

Deno.test("parseSignature() reads t and v1 entries and refuses anything else", () => {
  const hex = "ab".repeat(32);
  assert.deepEqual(parseSignature(`t=12,v1=${hex}`)?.t, 12);
  assert.equal(parseSignature(`t=12, v0=zz, v1=${hex}, v1=${"cd".repeat(32)}`)?.v1.length, 2);
  for (
    const bad of [
      "",
      `v1=${hex}`,
      "t=12",
      `t=12,v1=${hex.slice(2)}`,
      `t=1.5,v1=${hex}`,
      `t=-1,v1=${hex}`,
      `t=1,t=2,v1=${hex}`,
      `t=12;v1=${hex}`,
    ]
  ) {
    assert.equal(parseSignature(bad), undefined, bad);
  }
});

Deno.test("apiKeyAuth({ hmac: 'required' }) checks the signature over the raw body", async (t) => {
  const { app, seen } = build({ hmac: "required" });
  const auth = { authorization: `Bearer ${INGEST.secret}` };

  await t.step("missing signature: 401", async () => {
    const res = await post(app, auth);
    assert.equal(res.status, 401);
    assert.equal((await error(res)).reason, "missing_signature");
  });

  await t.step("malformed signature: 401", async () => {
    const res = await post(app, { ...auth, "x-signature": `t=${NOW_S},v1=nothex` });
    assert.equal((await error(res)).reason, "malformed_signature");
  });

  await t.step("signed with another key's secret: 401", async () => {
    const signature = await signBody(BACKFILL.secret, NOW_S, BODY);
    const res = await post(app, { ...auth, "x-signature": signature });
    assert.equal(res.status, 401);
    assert.match(res.headers.get("www-authenticate")!, /invalid_token/);
    assert.equal((await error(res)).reason, "invalid_signature");
  });

  await t.step("signed over another body: 401", async () => {
    const signature = await signBody(INGEST.secret, NOW_S, BODY.replace("u-1", "u-2"));
    const res = await post(app, { ...auth, "x-signature": signature });
    assert.equal((await error(res)).reason, "invalid_signature");
  });

  await t.step("a timestamp past the tolerance, either way: 401 with the reason", async () => {
    for (const t of [NOW_S - 301, NOW_S + 301]) {
      const signature = await signBody(INGEST.secret, t, BODY);
      const res = await post(app, { ...auth, "x-signature": signature });
      assert.equal(res.status, 401);
      const err = await error(res);
      assert.equal(err.reason, "signature_expired");
      assert.match(String(err.message), /301 s from the server's clock; the tolerance is 300 s/);
    }
  });

  await t.step("a good signature passes and the route reads the same body", async () => {
    for (const t of [NOW_S, NOW_S - 300, NOW_S + 300]) {
      const signature = await signBody(INGEST.secret, t, BODY);
      const res = await post(app, { ...auth, "x-signature": signature });
      assert.equal(res.status, 202);
    }
    assert.deepEqual(seen.splice(0), Array(3).fill({ apiKey: "ingest", body: BODY }));
  });

  await t.step("one matching v1 among several passes (key rotation)", async () => {
    const good = await signBody(INGEST.secret, NOW_S, BODY);
    const other = await signBody(BACKFILL.secret, NOW_S, BODY);
    const header = `${other},${good.split(",")[1]}`;
    assert.equal((await post(app, { ...auth, "x-signature": header })).status, 202);
    seen.splice(0);
  });

  await t.step("a gzip body is signed as sent and read decompressed by the route", async () => {
    const gzipped = new Uint8Array(
      await new Response(
        new Blob([BODY]).stream().pipeThrough(new CompressionStream("gzip")),
      ).arrayBuffer(),
    );
    const signature = await signBody(INGEST.secret, NOW_S, gzipped);
    const res = await post(
      app,
      { ...auth, "x-signature": signature, "content-encoding": "gzip" },
      gzipped,
    );
    assert.equal(res.status, 202);
    assert.deepEqual(seen.splice(0), [{ apiKey: "ingest", body: BODY }]);
  });

  await t.step("a body declared too large: 413 before a byte is read", async () => {
    let pulled = false;
    // highWaterMark 0: nothing is pulled until someone reads.
    const body = new ReadableStream<Uint8Array>({
      pull() {
        pulled = true;
        throw new Error("must not be read");
      },
    }, { highWaterMark: 0 });
    const res = await app.request("/events", {
      method: "POST",
      headers: {
        ...auth,
        "content-type": "application/json",
        "content-length": String(MAX_BODY + 1),
        "x-signature": await signBody(INGEST.secret, NOW_S, ""),
      },
      body,
      duplex: "half",
    } as RequestInit);
    assert.equal(res.status, 413);
    assert.equal((await error(res)).code, "limit_body_bytes");
    assert.equal(pulled, false);
  });

  await t.step(
    "an endless body without a length: 413 after reading just past the limit",
    async () => {
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          sent += 100;
          controller.enqueue(new Uint8Array(100).fill(0x20));
        },
      });
      const res = await app.request("/events", {
        method: "POST",
        headers: {
          ...auth,
          "content-type": "application/json",
          "x-signature": await signBody(INGEST.secret, NOW_S, ""),
        },
        body,
        duplex: "half",
      } as RequestInit);
      assert.equal(res.status, 413);
      assert.ok(sent <= MAX_BODY + 300, `read ${sent} bytes`);
    },
  );

  await t.step("a request without a body signs the empty string", async () => {
    const res = await app.request("/events", {
      headers: { ...auth, "x-signature": await signBody(INGEST.secret, NOW_S, "") },
    });
    assert.deepEqual(await res.json(), { apiKey: "ingest" });
  });
  assert.deepEqual(seen, []);
});

Deno.test("apiKeyAuth({ hmac: 'optional' }) checks a signature only when one is sent", async () => {
  const { app, seen } = build({ hmac: "optional" });
  const auth = { "x-api-key": INGEST.secret };
  assert.equal((await post(app, auth)).status, 202);
  const good = await signBody(INGEST.secret, NOW_S, BODY);
  assert.equal((await post(app, { ...auth, "x-signature": good })).status, 202);
  const bad = await signBody(INGEST.secret, NOW_S, "{}");
  const res = await post(app, { ...auth, "x-signature": bad });
  assert.equal((await error(res)).reason, "invalid_signature");
  assert.deepEqual(seen.map((s) => s.body), [BODY, BODY]);
});

/** A limiter that always fails. */
const downLimiter: RateLimiter = {
  kind: "down",
  policy: { limit: 2, windowMs: 10_000 },
  limit: (): Promise<RateLimitDecision> => Promise.reject(new Error("connection refused")),
  close: () => Promise.resolve(),
};

Deno.test("rateLimit() answers 429 with Retry-After and RateLimit-* headers, per API key", async () => {
  let clock = NOW_S * 1000 + 2500;
  const guard = new RateLimitGuard(
    new MemoryRateLimiter({ limit: 2, windowMs: 10_000, now: () => clock }),
  );
  const { app, seen } = build({}, silentLogger, rateLimit({ guard, now: () => clock }));
  const ingest = { "x-api-key": INGEST.secret };

  const first = await post(app, ingest);
  assert.equal(first.status, 202);
  assert.equal(first.headers.get("ratelimit-limit"), "2");
  assert.equal(first.headers.get("ratelimit-remaining"), "1");
  assert.equal(first.headers.get("ratelimit-reset"), "8");
  assert.equal(first.headers.get("ratelimit-policy"), "2;w=10");
  assert.equal((await post(app, ingest)).status, 202);

  const limited = await post(app, ingest);
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get("retry-after"), "8");
  assert.equal(limited.headers.get("ratelimit-remaining"), "0");
  const err = await error(limited);
  assert.equal(err.code, "rate_limited");
  assert.match(String(err.message), /More than 2 requests in 10 s with this API key; retry in 8 s/);

  // Another key has its own limit; the refused request never reached the route.
  assert.equal((await post(app, { "x-api-key": BACKFILL.secret })).status, 202);
  assert.deepEqual(seen.map((s) => s.apiKey), ["ingest", "ingest", "backfill"]);

  // Two windows later the key starts afresh.
  clock += 20_000;
  assert.equal((await post(app, ingest)).status, 202);
});

Deno.test("rateLimit() without auth limits per connection address, or per trusted proxy hop", async () => {
  const remote = (hostname: string) => ({
    remoteAddr: { transport: "tcp", hostname, port: 40000 } satisfies Deno.NetAddr,
  });
  const request = (app: Hono, hostname: string, forwarded?: string) =>
    app.request(
      "/",
      { headers: forwarded === undefined ? {} : { "x-forwarded-for": forwarded } },
      remote(hostname),
    );
  const make = (trustProxy: boolean) => {
    const guard = new RateLimitGuard(new MemoryRateLimiter({ limit: 1, windowMs: 60_000 }));
    const app = new Hono();
    app.use(rateLimit({ guard, trustProxy }));
    app.get("/", (c) => c.text("ok"));
    return app;
  };

  const direct = make(false);
  assert.equal((await request(direct, "192.0.2.1", "198.51.100.1")).status, 200);
  // A forged X-Forwarded-For changes nothing without trustProxy.
  assert.equal((await request(direct, "192.0.2.1", "198.51.100.2")).status, 429);
  assert.equal((await request(direct, "192.0.2.2")).status, 200);
  const err = await (await request(direct, "192.0.2.2")).json();
  assert.match(err.error.message, /from this address/);

  const proxied = make(true);
  // The proxy (192.0.2.9) appends the address it saw; what the client wrote before it is ignored.
  assert.equal((await request(proxied, "192.0.2.9", "forged, 198.51.100.1")).status, 200);
  assert.equal((await request(proxied, "192.0.2.9", "other, 198.51.100.1")).status, 429);
  assert.equal((await request(proxied, "192.0.2.9", "198.51.100.2")).status, 200);
});

Deno.test("rateLimit() lets requests through when the store is down and failing open", async () => {
  const degraded: string[] = [];
  const guard = new RateLimitGuard(downLimiter, {
    failure: "open",
    onDegraded: (e) => degraded.push(e.policy),
  });
  const { app, seen } = build({}, silentLogger, rateLimit({ guard }));
  for (let i = 0; i < 3; i++) {
    const res = await post(app, { "x-api-key": INGEST.secret });
    assert.equal(res.status, 202);
    assert.equal(res.headers.get("ratelimit-limit"), null);
  }
  assert.equal(seen.length, 3);
  assert.deepEqual(degraded, ["open", "open", "open"]);
});

Deno.test("rateLimit() answers 503 with Retry-After when the store is down and failing closed", async () => {
  const degraded: string[] = [];
  const guard = new RateLimitGuard(downLimiter, {
    failure: "closed",
    cooldownMs: 5000,
    onDegraded: (e) => degraded.push(e.policy),
  });
  const { app, seen } = build({}, silentLogger, rateLimit({ guard }));
  const res = await post(app, { "x-api-key": INGEST.secret });
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("retry-after"), "5");
  assert.equal((await error(res)).code, "rate_limit_unavailable");
  assert.equal(seen.length, 0);
  assert.deepEqual(degraded, ["closed"]);
});

Deno.test("apiKeyAuth() and rateLimit() never log a secret, good or bad", async () => {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (_level, line) => lines.push(line) });
  const wrong = "wrong-secret-Zq9Xv7Lm3Np5Rt8W";
  const guard = new RateLimitGuard(downLimiter, { logger, cooldownMs: 0 });
  const { app } = build({ hmac: "optional" }, logger, rateLimit({ guard }));
  app.get("/boom", apiKeyAuth({ keys: KEYS, logger }), () => {
    throw new Error("the route failed");
  });

  const statuses = [
    (await post(app, { authorization: `Bearer ${wrong}` })).status,
    (await post(app, { "x-api-key": wrong })).status,
    (await post(app, { authorization: `Bearer ${INGEST.secret}` })).status,
    (await post(app, {
      "x-api-key": INGEST.secret,
      "x-signature": await signBody(wrong, NOW_S, BODY),
    })).status,
    (await post(app, {
      "x-api-key": BACKFILL.secret,
      "x-signature": await signBody(BACKFILL.secret, NOW_S - 1000, BODY),
    })).status,
    (await post(app, {
      "x-api-key": INGEST.secret,
      "x-signature": await signBody(INGEST.secret, NOW_S, ""),
    }, "x".repeat(MAX_BODY + 1))).status,
    (await app.request("/boom", { headers: { "x-api-key": INGEST.secret } })).status,
  ];
  assert.deepEqual(statuses, [401, 401, 202, 401, 401, 413, 500]);
  assert.ok(lines.length >= 6, `only ${lines.length} log lines`);
  const secrets = [INGEST.secret, BACKFILL.secret, wrong];
  for (const line of lines) {
    for (const secret of secrets) {
      // Any 8 characters in a row of a secret would be a leak.
      for (let i = 0; i + 8 <= secret.length; i++) {
        assert.ok(!line.includes(secret.slice(i, i + 8)), `a secret in the log: ${line}`);
      }
    }
  }
  assert.ok(lines.some((line) => line.includes('"api_key":"ingest"')));
});

Deno.test("apiKeyAuth() mounted before eventRoutes(): the real POST /events ingests a signed body", async () => {
  const appended: Envelope[] = [];
  const log: EventLog = {
    append: (events) => {
      appended.push(...events);
      return Promise.resolve();
    },
    overloaded: () => undefined,
    close: () => Promise.resolve(),
  };
  const deadLetters: DeadLetterSink = {
    send: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  const ingestor = new Ingestor(log, deadLetters, {
    validation: { unknownTypes: "reject", maxPastMs: 86_400_000, maxFutureMs: 3_600_000 },
    timeoutMs: 1000,
    now: () => NOW_S * 1000,
  });
  const limits = { maxBytes: MAX_BODY, maxEvents: 10, maxDepth: 8 };
  const app = new Hono<{ Variables: { requestId: string } }>();
  app.use(requestId());
  app.onError(errorHandler(silentLogger));
  // As createApp() would: the access middleware first, the route group after it.
  const guard = new RateLimitGuard(new MemoryRateLimiter({ limit: 10, windowMs: 10_000 }));
  app.on(
    "POST",
    "/events",
    apiKeyAuth({ keys: KEYS, hmac: "required", maxBodyBytes: limits.maxBytes }),
    rateLimit({ guard }),
  );
  app.route("/", eventRoutes({ ingestor, limits, logger: silentLogger }));

  const headers = {
    "content-type": "application/json",
    authorization: `Bearer ${INGEST.secret}`,
    "x-signature": await signBody(INGEST.secret, Math.floor(Date.now() / 1000), BODY),
  };
  const res = await app.request("/events", { method: "POST", headers, body: BODY });
  assert.equal(res.status, 202, await res.clone().text());
  assert.equal(res.headers.get("ratelimit-remaining"), "9");
  assert.equal(appended.length, 1);
  assert.equal(appended[0]!.user_id, "u-1");
  const unsigned = await app.request("/events", {
    method: "POST",
    headers: { ...headers, "x-signature": "" },
    body: BODY,
  });
  assert.equal(unsigned.status, 401);
  assert.equal(appended.length, 1);
});
