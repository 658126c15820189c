// In-process tests of the HTTP app (routes/app.ts, routes/events.ts, routes/health.ts) with
// in-memory implementations of the log and the dead-letter sink. No server is started.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { type BodyLimits, parseBody } from "./body.ts";
import { Ingestor } from "../pipeline/ingest.ts";
import { silentLogger } from "../shared/logger.ts";
import { EVENT_TYPES } from "../shared/schemas.ts";
import { internalError, loginEvent, MemoryDeadLetters, MemoryLog } from "../pipeline/testing.ts";
import type { ValidationOptions } from "../pipeline/validate.ts";
import { createApp } from "./app.ts";
import type { ReadinessCheck } from "./health.ts";

const NOW_MS = Date.parse("2024-05-01T12:00:00Z");
const LIMITS: BodyLimits = { maxBytes: 16 * 1024, maxEvents: 5, maxDepth: 6 };
const VALIDATION: ValidationOptions = {
  unknownTypes: "reject",
  maxPastMs: 30 * 86_400_000,
  maxFutureMs: 3_600_000,
};

interface Harness {
  app: ReturnType<typeof createApp>;
  log: MemoryLog;
  deadLetters: MemoryDeadLetters;
}

function harness(
  options: {
    timeoutMs?: number;
    readiness?: ReadinessCheck[];
    onAccepted?: Parameters<typeof createApp>[0]["onAccepted"];
  } = {},
): Harness {
  const log = new MemoryLog();
  const deadLetters = new MemoryDeadLetters();
  const ingestor = new Ingestor(log, deadLetters, {
    validation: VALIDATION,
    timeoutMs: options.timeoutMs ?? 1_000,
    now: () => NOW_MS,
  });
  const app = createApp({
    ingestor,
    limits: LIMITS,
    logger: silentLogger,
    ...(options.readiness ? { readiness: options.readiness } : {}),
    ...(options.onAccepted ? { onAccepted: options.onAccepted } : {}),
  });
  return { app, log, deadLetters };
}

/** Runs `fn` with a fresh app and closes the in-memory log afterwards. */
async function withApp(
  fn: (h: Harness) => Promise<void>,
  options: Parameters<typeof harness>[0] = {},
): Promise<void> {
  const h = harness(options);
  try {
    await fn(h);
  } finally {
    await h.log.close();
  }
}

interface Reply {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  json: any;
}

/** Sends a request, checks the reply is JSON without internals, and parses it. */
async function send(
  app: Harness["app"],
  input: string | Request,
  init?: RequestInit,
): Promise<Reply> {
  const res = await app.request(input, init);
  const text = await res.text();
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/, text);
  assertNoInternals(text);
  return { status: res.status, headers: res.headers, json: JSON.parse(text) };
}

function assertNoInternals(text: string): void {
  assert.doesNotMatch(text, /\n\s+at /, `stack trace in ${text}`);
  assert.doesNotMatch(text, /\\n\s+at /, `stack trace in ${text}`);
  assert.doesNotMatch(text, /\.ts:\d+:\d+/, `source position in ${text}`);
  assert.doesNotMatch(text, /"stack"/, `stack field in ${text}`);
}

function post(
  app: Harness["app"],
  body: BodyInit,
  headers: Record<string, string> = { "content-type": "application/json" },
): Promise<Reply> {
  return send(app, "/events", { method: "POST", body, headers });
}

const event = loginEvent;

const BAD_PURCHASE = event({ type: "purchase", payload: { amount: "lots" } });

async function gzip(text: string): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

Deno.test("POST /events answers 202 with accepted count and event ids once the log has them", async () => {
  await withApp(async ({ app, log, deadLetters }) => {
    const id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    const res = await post(
      app,
      JSON.stringify([event({ event_id: id }), event({ user_id: "u-2" })]),
    );
    assert.equal(res.status, 202);
    assert.equal(res.json.accepted, 2);
    assert.deepEqual(res.json.rejected, []);
    assert.equal(res.json.event_ids.length, 2);
    assert.equal(res.json.event_ids[0], id);

    assert.deepEqual(log.events.map((e) => e.event_id), res.json.event_ids);
    assert.deepEqual(log.events.map((e) => e.user_id), ["u-1", "u-2"]);
    assert.equal(log.events[0]!.received_at, "2024-05-01T12:00:00.000000Z");
    assert.equal(log.events[0]!.source, "http");
    assert.deepEqual(deadLetters.letters, []);
  });
});

Deno.test("POST /events accepts one JSON object", async () => {
  await withApp(async ({ app, log }) => {
    const res = await post(app, JSON.stringify(event()));
    assert.equal(res.status, 202);
    assert.equal(res.json.accepted, 1);
    assert.equal(log.events.length, 1);
  });
});

Deno.test("POST /events with valid and invalid events answers 202 and dead-letters the invalid", async () => {
  await withApp(async ({ app, log, deadLetters }) => {
    const body = [event(), BAD_PURCHASE, event({ user_id: "u-3" }), { type: "nope" }];
    const res = await post(app, JSON.stringify(body), {
      "content-type": "application/json",
      "x-request-id": "req-42",
    });
    assert.equal(res.status, 202);
    assert.equal(res.headers.get("x-request-id"), "req-42");
    assert.equal(res.json.accepted, 2);
    assert.deepEqual(res.json.rejected.map((r: { index: number }) => r.index), [1, 3]);
    assert.deepEqual(res.json.rejected[0].issues.map((i: { path: string }) => i.path), [
      "payload.amount",
    ]);
    assert.equal(log.events.length, 2);
    assert.deepEqual(log.events.map((e) => e.user_id), ["u-1", "u-3"]);

    assert.equal(deadLetters.letters.length, 2);
    const [first, second] = deadLetters.letters;
    assert.equal(first!.raw, JSON.stringify(BAD_PURCHASE));
    assert.deepEqual(JSON.parse(first!.raw as string), BAD_PURCHASE);
    assert.deepEqual(first!.reasons, res.json.rejected[0].issues);
    assert.equal(first!.request_id, "req-42");
    assert.equal(first!.index, 1);
    assert.equal(first!.source, "http");
    assert.equal(first!.received_at, "2024-05-01T12:00:00.000Z");
    assert.equal(second!.index, 3);
    assert.equal(second!.raw, '{"type":"nope"}');
  });
});

Deno.test("POST /events echoes a rejected event's event_id", async () => {
  await withApp(async ({ app }) => {
    const id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    const res = await post(app, JSON.stringify([event(), { ...BAD_PURCHASE, event_id: id }]));
    assert.equal(res.json.rejected[0].event_id, id);
  });
});

Deno.test("POST /events with only invalid events answers 422 and logs nothing", async () => {
  await withApp(async ({ app, log, deadLetters }) => {
    const res = await post(app, JSON.stringify([BAD_PURCHASE, event({ occurred_at: "today" })]));
    assert.equal(res.status, 422);
    assert.equal(res.json.accepted, 0);
    assert.deepEqual(res.json.event_ids, []);
    assert.equal(res.json.rejected.length, 2);
    assert.equal(log.events.length, 0);
    assert.equal(deadLetters.letters.length, 2);
    assert.ok(deadLetters.letters[0]!.request_id, "a request id is generated when none is sent");
  });
});

Deno.test("POST /events reads NDJSON, and a bad line is one rejected event", async (t) => {
  for (const type of ["application/x-ndjson", "application/jsonl"]) {
    await t.step(type, async () => {
      await withApp(async ({ app, log, deadLetters }) => {
        const body = [JSON.stringify(event()), "", '{"type": oops', JSON.stringify(event())].join(
          "\r\n",
        );
        const res = await post(app, body, { "content-type": type });
        assert.equal(res.status, 202);
        assert.equal(res.json.accepted, 2);
        assert.equal(res.json.rejected.length, 1);
        const [rejected] = res.json.rejected;
        assert.equal(rejected.index, 1);
        assert.equal(rejected.issues[0].code, "invalid_json");
        assert.match(rejected.issues[0].message, /line 3/);
        assert.equal(log.events.length, 2);
        assert.equal(deadLetters.letters[0]!.raw, '{"type": oops');
      });
    });
  }
});

Deno.test("POST /events reads a gzip body", async () => {
  await withApp(async ({ app, log }) => {
    const body = await gzip(JSON.stringify([event(), event(), event()]));
    const res = await post(app, body, {
      "content-type": "application/json",
      "content-encoding": "gzip",
    });
    assert.equal(res.status, 202);
    assert.equal(res.json.accepted, 3);
    assert.equal(log.events.length, 3);
  });
});

Deno.test("POST /events with bad JSON answers 400 with error.where", async () => {
  await withApp(async ({ app, log }) => {
    const res = await post(app, '[\n  {"type": "login",}\n]');
    assert.equal(res.status, 400);
    assert.equal(res.json.error.code, "invalid_body");
    assert.deepEqual(res.json.error.where, { line: 2, column: 20 });
    assert.match(res.json.error.message, /line 2, column 20/);
    assert.ok(res.json.request_id);
    assert.equal(log.appendCalls, 0);
  });
});

Deno.test("POST /events with invalid UTF-8 answers 400", async () => {
  await withApp(async ({ app }) => {
    const res = await post(app, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
    assert.equal(res.status, 400);
    assert.equal(res.json.error.code, "invalid_body");
  });
});

Deno.test("POST /events answers 413 when a limit is exceeded", async (t) => {
  const big = JSON.stringify([event({ payload: { pad: "x".repeat(LIMITS.maxBytes) } })]);
  await t.step("body too large, with Content-Length", async () => {
    await withApp(async ({ app, log }) => {
      const res = await post(app, big, {
        "content-type": "application/json",
        "content-length": String(big.length),
      });
      assert.equal(res.status, 413);
      assert.equal(res.json.error.code, "limit_body_bytes");
      assert.equal(log.appendCalls, 0);
    });
  });
  await t.step("body too large, streamed", async () => {
    await withApp(async ({ app }) => {
      const stream = new Blob([big]).stream();
      const res = await post(app, stream);
      assert.equal(res.status, 413);
      assert.equal(res.json.error.code, "limit_body_bytes");
    });
  });
  await t.step("body too large after gzip", async () => {
    await withApp(async ({ app }) => {
      const res = await post(app, await gzip(big), {
        "content-type": "application/json",
        "content-encoding": "gzip",
      });
      assert.equal(res.status, 413);
      assert.match(res.json.error.message, /after decompression/);
    });
  });
  await t.step("too many events", async () => {
    await withApp(async ({ app, log }) => {
      const many = Array.from({ length: LIMITS.maxEvents + 1 }, () => event());
      const res = await post(app, JSON.stringify(many));
      assert.equal(res.status, 413);
      assert.equal(res.json.error.code, "limit_events");
      const ndjson = many.map((e) => JSON.stringify(e)).join("\n");
      const res2 = await post(app, ndjson, { "content-type": "application/x-ndjson" });
      assert.equal(res2.status, 413);
      assert.equal(res2.json.error.code, "limit_events");
      assert.equal(log.appendCalls, 0);
    });
  });
  await t.step("too deep", async () => {
    await withApp(async ({ app, log }) => {
      const deep = JSON.stringify([event({ payload: { a: [[[[[[1]]]]]] } })]);
      const res = await post(app, deep);
      assert.equal(res.status, 413);
      assert.equal(res.json.error.code, "limit_json_depth");
      assert.equal(log.appendCalls, 0);
    });
  });
});

Deno.test("POST /events answers 415 for an unsupported content type or encoding", async () => {
  await withApp(async ({ app, log }) => {
    const res = await post(app, JSON.stringify(event()), { "content-type": "text/plain" });
    assert.equal(res.status, 415);
    assert.equal(res.json.error.code, "unsupported_content");
    const res2 = await post(app, JSON.stringify(event()), {
      "content-type": "application/json",
      "content-encoding": "br",
    });
    assert.equal(res2.status, 415);
    assert.equal(log.appendCalls, 0);
  });
});

Deno.test("POST /events answers 503 with Retry-After when the log is overloaded", async () => {
  await withApp(async ({ app, log, deadLetters }) => {
    log.busy = "The lake is 5000 events behind the log";
    const req = new Request("http://gateway.test/events", {
      method: "POST",
      body: JSON.stringify([event(), BAD_PURCHASE]),
      headers: { "content-type": "application/json" },
    });
    const res = await send(app, req);
    assert.equal(res.status, 503);
    assert.equal(res.json.error.code, "overloaded");
    assert.match(res.json.error.message, /5000 events behind/);
    const retryAfter = Number(res.headers.get("retry-after"));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${retryAfter}`);
    assert.equal(log.appendCalls, 0);
    assert.equal(deadLetters.letters.length, 0);
    assert.equal(req.bodyUsed, false, "the body is not read under overload");
  });
});

Deno.test("POST /events answers 503 when the log does not confirm within timeoutMs", async () => {
  await withApp(async ({ app, log }) => {
    log.mode = "hang";
    const started = performance.now();
    const res = await post(app, JSON.stringify(event()));
    const took = performance.now() - started;
    assert.equal(res.status, 503);
    assert.equal(res.json.error.code, "overloaded");
    assert.match(res.json.error.message, /within 50 ms/);
    assert.ok(res.headers.get("retry-after"));
    assert.ok(took >= 45 && took < 2_000, `answered after ${took} ms`);
    assert.equal(log.appendCalls, 1);
  }, { timeoutMs: 50 });
});

Deno.test("POST /events answers 503, not 500, when the log or dead-letter sink throws", async (t) => {
  await t.step("log", async () => {
    await withApp(async ({ app, log }) => {
      log.mode = "fail";
      const res = await post(app, JSON.stringify(event()));
      assert.equal(res.status, 503);
      assert.equal(res.json.error.code, "overloaded");
      assert.ok(res.headers.get("retry-after"));
    });
  });
  await t.step("dead-letter sink", async () => {
    await withApp(async ({ app, deadLetters }) => {
      deadLetters.mode = "fail";
      const res = await post(app, JSON.stringify([event(), BAD_PURCHASE]));
      assert.equal(res.status, 503);
    });
  });
});

Deno.test("POST /events still answers 202 when a post-ingest hook throws (the events are durable)", async () => {
  await withApp(async ({ app, log }) => {
    const res = await post(app, JSON.stringify(event()));
    assert.equal(res.status, 202);
    assert.equal(res.json.accepted, 1);
    assert.equal(log.events.length, 1);
  }, {
    onAccepted: () => {
      throw internalError();
    },
  });
});

Deno.test("GET /schemas lists the JSON Schema of every event type", async () => {
  await withApp(async ({ app }) => {
    const res = await send(app, "/schemas");
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.json), EVENT_TYPES);
    for (const type of EVENT_TYPES) assert.ok(res.json[type].properties.payload, type);
  });
});

Deno.test("GET /schemas/:type answers one schema or 404", async (t) => {
  await withApp(async ({ app }) => {
    await t.step("a known type", async () => {
      const res = await send(app, "/schemas/login");
      assert.equal(res.status, 200);
      assert.equal(res.json.properties.type.const, "login");
      assert.ok(res.json.required.includes("user_id"));
    });
    for (
      const path of [
        "/schemas/unknown",
        "/schemas/../../etc",
        "/schemas/..%2F..%2Fetc%2Fpasswd",
        "/schemas/login%3Bdrop",
        "/schemas/constructor",
        "/schemas/__proto__",
      ]
    ) {
      await t.step(path, async () => {
        const res = await send(app, path);
        assert.equal(res.status, 404);
        assert.ok(res.json.error.message);
      });
    }
  });
});

Deno.test("GET /health answers 200", async () => {
  await withApp(async ({ app, log }) => {
    log.busy = "overloaded";
    const res = await send(app, "/health");
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { status: "ok" });
  });
});

Deno.test("GET /ready answers 200 normally and 503 when not ready", async (t) => {
  await t.step("ready", async () => {
    await withApp(async ({ app }) => {
      const res = await send(app, "/ready");
      assert.equal(res.status, 200);
      assert.equal(res.json.status, "ready");
      assert.deepEqual(res.json.dependencies.ingest, { state: "ok" });
    });
  });
  await t.step("overloaded log", async () => {
    await withApp(async ({ app, log }) => {
      log.busy = "The lake is 99 events behind the log";
      const res = await send(app, "/ready");
      assert.equal(res.status, 503);
      assert.equal(res.json.status, "unavailable");
      assert.deepEqual(res.json.dependencies.ingest, {
        state: "down",
        detail: "The lake is 99 events behind the log",
      });
    });
  });
  await t.step("a critical check down, a non-critical one degraded or throwing", async () => {
    const checks: ReadinessCheck[] = [
      { name: "lake", critical: true, probe: () => Promise.resolve({ state: "down" }) },
      { name: "cache", critical: false, probe: () => Promise.reject(new Error("timeout")) },
    ];
    await withApp(async ({ app }) => {
      const res = await send(app, "/ready");
      assert.equal(res.status, 503);
      assert.equal(res.json.dependencies.lake.state, "down");
      assert.deepEqual(res.json.dependencies.cache, { state: "down", detail: "timeout" });
    }, { readiness: checks });
  });
  await t.step("only a non-critical check down", async () => {
    const checks: ReadinessCheck[] = [
      { name: "cache", critical: false, probe: () => Promise.resolve({ state: "down" }) },
    ];
    await withApp(async ({ app }) => {
      assert.equal((await send(app, "/ready")).status, 200);
    }, { readiness: checks });
  });
});

Deno.test("unknown routes answer 404 JSON", async () => {
  await withApp(async ({ app }) => {
    for (const [method, path] of [["GET", "/nope"], ["GET", "/events"], ["DELETE", "/schemas"]]) {
      const res = await send(app, path!, { method: method! });
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(res.json.error.code, "not_found");
      assert.match(res.json.error.message, new RegExp(`${method} ${path}`));
    }
  });
});

Deno.test("Ingestor refuses an event over maxEventBytes, keeps the others, cuts the dead letter", async () => {
  const log = new MemoryLog();
  const deadLetters = new MemoryDeadLetters();
  const ingestor = new Ingestor(log, deadLetters, {
    validation: VALIDATION,
    timeoutMs: 1_000,
    now: () => NOW_MS,
    maxEventBytes: 2_000,
  });
  try {
    const big = event({ payload: { ip: "203.0.113.7", note: "é".repeat(1_000) } }); // > 2,000 B
    const items = parseBody(JSON.stringify([event(), big]), false, { ...LIMITS, maxBytes: 1e6 });
    const result = await ingestor.ingest(items, "req-1");
    assert.equal(result.accepted, 1);
    assert.equal(result.rejected[0]!.index, 1);
    assert.equal(result.rejected[0]!.issues[0]!.code, "too_large");
    assert.match(result.rejected[0]!.issues[0]!.message, /bytes of JSON; the limit is 2000/);
    assert.equal(log.events.length, 1);
    const letter = deadLetters.letters[0]!;
    assert.ok(new TextEncoder().encode(letter.raw as string).byteLength <= 2_000);
    assert.ok(JSON.stringify(big).startsWith(letter.raw as string));
    assert.equal(letter.reasons.at(-1)!.code, "raw_truncated");
  } finally {
    await log.close();
  }
});
