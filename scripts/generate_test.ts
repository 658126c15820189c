import assert from "node:assert/strict";
import { type ClientEvent, createScenario } from "./events_gen.ts";
import {
  HttpSink,
  type Outcome,
  parseArgs,
  parseRetryAfter,
  parseTarget,
  percentile,
  rateSchedule,
  runGenerator,
  type Sink,
  TokenBucket,
  UsageError,
} from "./generate.ts";

/** A sink that answers from a script of outcomes per attempt and records every attempt. */
function fakeSink(
  answer: (events: ClientEvent[], attempt: number) => Outcome,
  latencyMs = 1,
): Sink & { attempts: { events: ClientEvent[]; start: number; end: number }[] } {
  const attempts: { events: ClientEvent[]; start: number; end: number }[] = [];
  return {
    name: "fake",
    attempts,
    check: () => Promise.resolve(),
    prepare(events) {
      let n = 0;
      return async () => {
        const rec = { events, start: performance.now(), end: 0 };
        attempts.push(rec);
        await new Promise((r) => setTimeout(r, latencyMs));
        rec.end = performance.now();
        return answer(events, n++);
      };
    },
    close: () => Promise.resolve(),
  };
}
const ok = (events: ClientEvent[]): Outcome => ({
  kind: "done",
  accepted: events.length,
  rejected: 0,
});

Deno.test("parseArgs() fills defaults and scales the user pool with the peak rate", () => {
  const o = parseArgs(["--seed", "5"]);
  assert.notEqual(o, "help");
  if (o === "help") return;
  assert.equal(o.scenario, "normal");
  assert.equal(o.rate, 100);
  assert.deepEqual(o.limit, { kind: "duration", seconds: 10 });
  assert.deepEqual(o.target, { kind: "http", url: "http://127.0.0.1:8080/events" });
  assert.equal(o.batch, 100);
  assert.equal(o.concurrency, 8);
  assert.equal(o.users, 10_000);
  assert.equal(o.seed, 5);
  assert.equal(o.burst, undefined);

  const b = parseArgs(["--scenario", "burst", "--rate", "1000", "--events", "30000"]);
  if (b === "help") throw new Error("unexpected help");
  assert.deepEqual(b.limit, { kind: "events", count: 30000 });
  assert.deepEqual(b.burst, { factor: 5, startS: 10, lengthS: 10 });
  assert.equal(b.users, 150_000);
  assert.equal(parseArgs(["-h"]), "help");
});

Deno.test("parseArgs() rejects bad arguments with a message naming the flag and value", async (t) => {
  const cases: [string[], RegExp][] = [
    [["--scenario", "ddos"], /Unknown --scenario "ddos": expected one of normal, bot-attack/],
    [["--rate", "0"], /Invalid --rate "0": expected a number greater than 0/],
    [["--rate", "fast"], /Invalid --rate "fast"/],
    [["--events", "1.5"], /Invalid --events "1.5": expected an integer/],
    [["--duration", "5", "--events", "10"], /Cannot use --duration and --events together/],
    [["--batch", "0"], /Invalid --batch "0"/],
    [["--concurrency", "-2"], /Invalid --concurrency "-2"/],
    [["--format", "xml"], /Unknown --format "xml"/],
    [["--target", "ftp://x:1"], /Invalid --target "ftp:\/\/x:1": expected http/],
    [["--target", "kafka://broker/events"], /broker "broker" is not host:port/],
    [["--target", "kafka://b:9092/bad topic"], /topic "bad topic"/],
    [["--target", "kafka://b:9092", "--format", "ndjson"], /Cannot use --format with a kafka/],
    [["--attack-share", "0.5"], /Cannot use --attack-share with scenario "normal"/],
    [["--scenario", "bot-attack", "--attack-share", "2"], /Invalid --attack-share "2"/],
    [["--burst-factor", "3"], /Cannot use --burst-factor with scenario "normal"/],
    [["--rate"], /Option '--rate <value>' argument missing/],
    [["--speed", "3"], /Unknown option '--speed'/],
    [["extra"], /Unexpected argument 'extra'/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), () => {
      assert.throws(() => parseArgs(args), (err: unknown) => {
        assert.ok(err instanceof UsageError, String(err));
        assert.match(err.message, message);
        assert.doesNotMatch(err.message, /\.$/);
        return true;
      });
    });
  }
});

Deno.test("parseTarget() reads HTTP and Kafka targets", () => {
  assert.deepEqual(parseTarget("http://h:1"), { kind: "http", url: "http://h:1/events" });
  assert.deepEqual(parseTarget("https://h/api/events"), {
    kind: "http",
    url: "https://h/api/events",
  });
  assert.deepEqual(parseTarget("kafka://127.0.0.1:9092"), {
    kind: "kafka",
    brokers: ["127.0.0.1:9092"],
    topic: "events",
  });
  assert.deepEqual(parseTarget("kafka://a:1,b:2/my.topic"), {
    kind: "kafka",
    brokers: ["a:1", "b:2"],
    topic: "my.topic",
  });
});

Deno.test("parseRetryAfter() reads seconds and HTTP dates", () => {
  const now = Date.parse("2025-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("2", now), 2000);
  assert.equal(parseRetryAfter("Wed, 01 Jan 2025 00:00:03 GMT", now), 3000);
  assert.equal(parseRetryAfter("Tue, 31 Dec 2024 00:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter(null, now), undefined);
  assert.equal(parseRetryAfter("soon", now), undefined);
});

Deno.test("TokenBucket refills at the scheduled rate up to its capacity", () => {
  let t = 0;
  const bucket = new TokenBucket(
    rateSchedule(100, { factor: 10, startS: 1, lengthS: 1 }),
    50,
    () => t,
  );
  assert.equal(bucket.take(10), 0);
  t = 100; // 100/s for 100 ms
  assert.equal(bucket.take(100), 10);
  assert.equal(bucket.msUntil(5), 50);
  t = 900; // capped: 80 would have flowed in
  assert.equal(bucket.take(100), 50);
  t = 1100; // burst: 1000/s
  assert.equal(bucket.take(1000), 50);
  t = 1120;
  assert.equal(bucket.take(1000), 20);
});

Deno.test("percentile() is nearest-rank", () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 0.5), 50);
  assert.equal(percentile(xs, 0.99), 99);
  assert.equal(percentile([], 0.5), 0);
});

Deno.test("runGenerator() paces to the rate in batches and delivers every event once", async () => {
  const sink = fakeSink(ok, 2);
  const s = await runGenerator({
    scenario: createScenario("normal", { seed: 1, users: 100 }),
    sink,
    rate: 1000,
    limit: { kind: "duration", seconds: 1 },
    batch: 50,
    concurrency: 4,
    retries: 0,
  });
  assert.ok(s.sent >= 850 && s.sent <= 1050, `sent ${s.sent} in 1 s at 1000/s`);
  assert.equal(s.accepted, s.sent);
  assert.equal(s.failed, 0);
  assert.ok(s.duration_s >= 1 && s.duration_s < 1.5, `${s.duration_s} s`);
  const ids = sink.attempts.flatMap((a) => a.events.map((e) => e.event_id));
  assert.equal(new Set(ids).size, s.sent);
  assert.ok(sink.attempts.every((a) => a.events.length <= 50));
  assert.ok(s.latency_ms.p50 >= 2 && s.latency_ms.p99 >= s.latency_ms.p50);
});

Deno.test("runGenerator() sends exactly --events and never more requests than the concurrency at once", async () => {
  let inFlight = 0, most = 0;
  const sink = fakeSink(ok, 5);
  const prepare = sink.prepare.bind(sink);
  sink.prepare = (events) => {
    const attempt = prepare(events);
    return async () => {
      most = Math.max(most, ++inFlight);
      try {
        return await attempt();
      } finally {
        inFlight--;
      }
    };
  };
  const s = await runGenerator({
    scenario: createScenario("normal", { seed: 1, users: 100 }),
    sink,
    rate: 50_000,
    limit: { kind: "events", count: 2345 },
    batch: 10,
    concurrency: 3,
    retries: 0,
  });
  assert.equal(s.sent, 2345);
  assert.equal(s.accepted, 2345);
  assert.ok(most <= 3 && most >= 2, `at most ${most} in flight`);
});

Deno.test("runGenerator() retries a throttled batch with the same events and counts it", async () => {
  const sink = fakeSink((events, attempt) =>
    attempt === 0
      ? { kind: "retry", reason: "HTTP 503: busy", throttled: true, retryAfterMs: 50 }
      : ok(events)
  );
  const s = await runGenerator({
    scenario: createScenario("normal", { seed: 1, users: 100 }),
    sink,
    rate: 10_000,
    limit: { kind: "events", count: 20 },
    batch: 10,
    concurrency: 1,
    retries: 3,
  });
  assert.equal(s.accepted, 20);
  assert.equal(s.failed, 0);
  assert.equal(s.throttled, 2);
  assert.equal(s.retried, 2);
  assert.deepEqual(s.errors, { "HTTP 503: busy": 2 });
  // The retry of each batch re-sends the same events after Retry-After.
  const [first, retry] = sink.attempts;
  assert.equal(first!.events, retry!.events);
  assert.ok(retry!.start - first!.end >= 45, `retried after ${retry!.start - first!.end} ms`);
});

Deno.test("runGenerator() counts a batch as lost after the retries, or at once when fatal", async () => {
  const failing = await runGenerator({
    scenario: createScenario("normal", { seed: 1, users: 100 }),
    sink: fakeSink(() => ({ kind: "retry", reason: "POST failed: refused", throttled: false })),
    rate: 10_000,
    limit: { kind: "events", count: 15 },
    batch: 10,
    concurrency: 2,
    retries: 2,
  });
  assert.equal(failing.failed, 15);
  assert.equal(failing.lost_batches, 2);
  assert.equal(failing.retried, 4);
  assert.equal(failing.errors["POST failed: refused"], 6);

  const fatal = await runGenerator({
    scenario: createScenario("normal", { seed: 1, users: 100 }),
    sink: fakeSink(() => ({ kind: "fatal", reason: "HTTP 413: too big" })),
    rate: 10_000,
    limit: { kind: "events", count: 5 },
    batch: 10,
    concurrency: 1,
    retries: 5,
  });
  assert.equal(fatal.failed, 5);
  assert.equal(fatal.retried, 0);
});

Deno.test("runGenerator() holds a bot's purchase until its earlier logins are acknowledged", async () => {
  const sink = fakeSink(ok, 15);
  const scenario = createScenario("bot-attack", { seed: 2, users: 100, attackShare: 0.5 });
  const bot = scenario.attack.bot_user as string;
  await runGenerator({
    scenario,
    sink,
    rate: 20_000,
    limit: { kind: "events", count: 300 },
    batch: 4,
    concurrency: 8,
    retries: 0,
  });
  for (const a of sink.attempts) {
    const i = a.events.findIndex((e) => e.user_id === bot && e.type === "purchase");
    if (i < 0) continue;
    const purchase = a.events[i]!;
    // Every earlier bot event is before it in this request or in a request already answered.
    for (const b of sink.attempts) {
      if (b === a) continue;
      const earlier = b.events.some((e) =>
        e.user_id === bot && e.occurred_at <= purchase.occurred_at
      );
      if (earlier && b.start < a.start) {
        assert.ok(b.end <= a.start, "sent before the logins were in");
      }
    }
  }
  assert.ok(
    sink.attempts.some((a) => a.events.some((e) => e.type === "purchase" && e.user_id === bot)),
  );
});

Deno.test("runGenerator() keeps the rate in bot-attack: holding the bot back stalls nobody else", async () => {
  const s = await runGenerator({
    scenario: createScenario("bot-attack", { seed: 2, users: 1000 }),
    sink: fakeSink(ok, 100),
    rate: 2000,
    limit: { kind: "duration", seconds: 1 },
    batch: 50,
    concurrency: 8,
    retries: 0,
  });
  // Waiting for each purchase's logins with the whole generator would cost ~100 ms per round,
  // 25 rounds a second: most of the run would be spent waiting.
  assert.ok(s.sent >= 1700, `sent ${s.sent} at 2000/s`);
  assert.equal(s.accepted, s.sent);
});

Deno.test("HttpSink posts JSON or NDJSON and reads the gateway's answers", async (t) => {
  const events = createScenario("normal", { seed: 1, users: 10 });
  const batch = [events.next().event, events.next().event];
  const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    const seen: { body: string; type: string | null }[] = [];
    const fetch = (_url: string | URL | Request, init?: RequestInit) => {
      seen.push({
        body: init!.body as string,
        type: new Headers(init!.headers).get("content-type"),
      });
      return Promise.resolve(new Response(JSON.stringify(body), { status, headers }));
    };
    return { seen, fetch: fetch as typeof globalThis.fetch };
  };
  const sink = (fetch: typeof globalThis.fetch, format: "json" | "ndjson" = "json") =>
    new HttpSink("http://gw/events", { format, timeoutMs: 1000, fetch });

  await t.step("202 with a rejection", async () => {
    const a = answer(202, {
      accepted: 1,
      rejected: [{ index: 1, issues: [{ path: "payload.amount", message: "Too big" }] }],
    });
    const out = await sink(a.fetch).prepare(batch)();
    assert.deepEqual(out, {
      kind: "done",
      accepted: 1,
      rejected: 1,
      note: "rejected: payload.amount: Too big",
    });
    assert.deepEqual(JSON.parse(a.seen[0]!.body), batch);
    assert.equal(a.seen[0]!.type, "application/json");
  });
  await t.step("NDJSON body", async () => {
    const a = answer(202, { accepted: 2, rejected: [] });
    await sink(a.fetch, "ndjson").prepare(batch)();
    assert.equal(a.seen[0]!.type, "application/x-ndjson");
    assert.deepEqual(a.seen[0]!.body.trim().split("\n").map((l) => JSON.parse(l)), batch);
  });
  await t.step("429 and 503 are throttling with Retry-After", async () => {
    for (const status of [429, 503]) {
      const a = answer(status, { error: { message: "Slow down" } }, { "retry-after": "3" });
      assert.deepEqual(await sink(a.fetch).prepare(batch)(), {
        kind: "retry",
        reason: `HTTP ${status}: Slow down`,
        throttled: true,
        retryAfterMs: 3000,
      });
    }
  });
  await t.step("500 is retried, 413 is fatal", async () => {
    assert.equal((await sink(answer(500, {}).fetch).prepare(batch)()).kind, "retry");
    const fatal = await sink(answer(413, { error: { message: "Too many events" } }).fetch)
      .prepare(batch)();
    assert.deepEqual(fatal, { kind: "fatal", reason: "HTTP 413: Too many events" });
  });
  await t.step("a network error is retried", async () => {
    const fetch = () => Promise.reject(new TypeError("connection refused"));
    const out = await sink(fetch as typeof globalThis.fetch).prepare(batch)();
    assert.deepEqual(out, {
      kind: "retry",
      reason: "POST failed: connection refused",
      throttled: false,
    });
  });
});
