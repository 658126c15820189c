// Tests of the metrics registry (names, labels, buckets, bounded label values), the lag helpers,
// and the hooks of the parts that report to it (ingestor, lake loader, detector, alerts, LLM judge).
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { startFakeOllama } from "../tests/fixtures/fake_ollama.ts";
import { labelValues, parseSamples, sampleValue } from "../tests/metrics_helpers.ts";
import type { BronzeBatch, BronzeWriteResult } from "../lake/bronze.ts";
import type { BodyItem } from "../pipeline/ingest.ts";
import { AlertPipeline } from "../pipeline/fraud/alert_pipeline.ts";
import type { AlertSink } from "../pipeline/fraud/sinks.ts";
import type { Judge } from "../pipeline/fraud/judge.ts";
import { alertIdOf, FraudDetector, summarize } from "../pipeline/fraud/detector.ts";
import { LlmJudge, outcomeKind } from "../pipeline/fraud/llm/llm_judge.ts";
import { DEFAULT_THRESHOLDS } from "../pipeline/fraud/rules.ts";
import type { WindowStore } from "../pipeline/fraud/windows.ts";
import { Ingestor } from "../pipeline/ingest.ts";
import { LakeLoader } from "../pipeline/lake_loader.ts";
import type { LogRecord } from "../pipeline/durable_log.ts";
import { createLogger } from "./logger.ts";
import {
  BUCKETS,
  instrumentLakeJobs,
  Metrics,
  METRICS_CONTENT_TYPE,
  type PartitionLag,
  throttleLagProbe,
  typeLabel,
} from "./metrics.ts";
import { walLagProbe } from "../pipeline/wal/input.ts";
import type { Envelope } from "./schemas.ts";
import type { ValidationOptions } from "../pipeline/validate.ts";
import { WAL_TOPIC } from "../pipeline/wal/wal.ts";
import { MemoryDeadLetters, MemoryLog } from "../pipeline/testing.ts";

const NOW_MS = Date.parse("2026-05-01T12:00:00Z");
const VALIDATION: ValidationOptions = {
  unknownTypes: "other",
  maxPastMs: 30 * 86_400_000,
  maxFutureMs: 3_600_000,
};

function rawEvent(type: unknown, payload: Record<string, unknown> = {}) {
  return {
    type,
    user_id: "u-1",
    occurred_at: new Date(NOW_MS - 1000).toISOString(),
    payload,
  };
}

function envelope(type: Envelope["type"], user = "u-1"): Envelope {
  const at = new Date(NOW_MS).toISOString();
  return {
    event_id: crypto.randomUUID(),
    type,
    event_type: type,
    user_id: user,
    occurred_at: at,
    received_at: at,
    source: "test",
    payload: type === "purchase" ? { amount: 10, currency: "USD" } : {},
  };
}

const ok = (value: unknown): BodyItem => ({ ok: true, value, raw: JSON.stringify(value) });

Deno.test("Metrics.events() counts by source and type, and collapses unknown types", async (t) => {
  const metrics = new Metrics();
  metrics.events("received", "http", ["purchase", "purchase", "login"]);
  metrics.events("received", "kafka", ["purchase", "no_such_type", "other", undefined, 42, ""]);
  const text = await metrics.text();
  const received = "streamgate_events_received_total";

  await t.step("a counted event shows with its labels and value", () => {
    assert.equal(sampleValue(text, received, { source: "http", type: "purchase" }), 2);
    assert.equal(sampleValue(text, received, { source: "http", type: "login" }), 1);
    assert.equal(sampleValue(text, received, { source: "kafka", type: "purchase" }), 1);
  });
  await t.step("an unknown type name is `other`, a missing type is `unknown`", () => {
    assert.equal(sampleValue(text, received, { source: "kafka", type: "other" }), 2);
    assert.equal(sampleValue(text, received, { source: "kafka", type: "unknown" }), 3);
    assert.deepEqual(labelValues(text, received, "type"), [
      "login",
      "other",
      "purchase",
      "unknown",
    ]);
  });
  await t.step("nothing counted means no sample", () => {
    assert.equal(sampleValue(text, received, { source: "http", type: "refund" }), undefined);
    assert.equal(
      sampleValue(text, "streamgate_events_accepted_total", { source: "http", type: "purchase" }),
      undefined,
    );
  });
});

Deno.test("typeLabel() keeps known types only", () => {
  assert.equal(typeLabel("page_view"), "page_view");
  assert.equal(typeLabel("other"), "other");
  assert.equal(typeLabel("Page_View"), "other");
  assert.equal(typeLabel("x".repeat(500)), "other");
  assert.equal(typeLabel(null), "unknown");
  assert.equal(typeLabel({ type: "login" }), "unknown");
});

Deno.test("Metrics.lakeFlushed() counts rows, files and bytes and fills the flush histogram", async () => {
  const metrics = new Metrics();
  metrics.lakeFlushed({ rows: 120, files: ["a.parquet", "b.parquet"], bytes: 4096 }, 30);
  metrics.lakeFlushed({ rows: 5, files: ["c.parquet"], bytes: 100 }, 700);
  const text = await metrics.text();
  assert.equal(sampleValue(text, "streamgate_lake_rows_written_total"), 125);
  assert.equal(sampleValue(text, "streamgate_lake_files_written_total"), 3);
  assert.equal(sampleValue(text, "streamgate_lake_bytes_written_total"), 4196);
  const bucket = (le: string) => sampleValue(text, "streamgate_lake_flush_seconds_bucket", { le });
  assert.equal(bucket("0.025"), 0);
  assert.equal(bucket("0.05"), 1);
  assert.equal(bucket("0.5"), 1);
  assert.equal(bucket("1"), 2);
  assert.equal(bucket("+Inf"), 2);
  assert.deepEqual(
    labelValues(text, "streamgate_lake_flush_seconds_bucket", "le").length,
    BUCKETS.lakeFlush.length + 1,
  );
  assert.equal(sampleValue(text, "streamgate_lake_flush_seconds_count"), 2);
  assert.ok(Math.abs(sampleValue(text, "streamgate_lake_flush_seconds_sum")! - 0.73) < 1e-9);
});

Deno.test("Metrics: the HTTP histogram has every bucket and bounds the method label", async () => {
  const metrics = new Metrics();
  metrics.httpRequest("POST", "/events", 202, 3);
  metrics.httpRequest("BREW", "unmatched", 404, 1);
  const text = await metrics.text();
  const name = "streamgate_http_request_duration_seconds";
  const labels = { method: "POST", route: "/events", status: "202" };
  for (const le of [...BUCKETS.http.map(String), "+Inf"]) {
    const expected = Number(le) >= 0.005 || le === "+Inf" ? 1 : 0;
    assert.equal(sampleValue(text, `${name}_bucket`, { ...labels, le }), expected, `le=${le}`);
  }
  assert.equal(sampleValue(text, `${name}_count`, labels), 1);
  assert.equal(
    sampleValue(text, `${name}_count`, { method: "OTHER", route: "unmatched", status: "404" }),
    1,
  );
});

Deno.test("Metrics: every contract metric is declared with its type", async () => {
  const metrics = new Metrics();
  const text = await metrics.text();
  const types = Object.fromEntries(
    [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]),
  );
  assert.deepEqual(types, {
    streamgate_events_received_total: "counter",
    streamgate_events_accepted_total: "counter",
    streamgate_events_rejected_total: "counter",
    streamgate_dead_letters_total: "counter",
    streamgate_lake_rows_written_total: "counter",
    streamgate_lake_files_written_total: "counter",
    streamgate_lake_bytes_written_total: "counter",
    streamgate_lake_flush_seconds: "histogram",
    streamgate_consumer_lag: "gauge",
    streamgate_fraud_alerts_total: "counter",
    streamgate_fraud_scoring_degraded_total: "counter",
    streamgate_llm_calls_total: "counter",
    streamgate_llm_disagreements_total: "counter",
    streamgate_rate_limit_unchecked_total: "counter",
    streamgate_llm_call_seconds: "histogram",
    streamgate_http_request_duration_seconds: "histogram",
    streamgate_lake_job_runs_total: "counter",
    streamgate_lake_job_seconds: "histogram",
    streamgate_lake_job_rows_total: "counter",
    streamgate_ingest_pending_events: "gauge",
    process_resident_memory_bytes: "gauge",
  });
  assert.ok(sampleValue(text, "process_resident_memory_bytes")! > 1024 * 1024);
  assert.equal(METRICS_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
  // Each instance has its own registry: a second one does not clash with the first.
  assert.ok((await new Metrics().text()).includes("streamgate_events_received_total"));
});

Deno.test("Metrics.setLags() replaces the partitions and clears them when the lag is unknown", async () => {
  const metrics = new Metrics();
  const lag = "streamgate_consumer_lag";
  metrics.setLags([{ topic: "events", partition: 0, lag: 7 }, {
    topic: "events",
    partition: 1,
    lag: 0,
  }]);
  let text = await metrics.text();
  assert.equal(sampleValue(text, lag, { topic: "events", partition: "0" }), 7);
  assert.equal(sampleValue(text, lag, { topic: "events", partition: "1" }), 0);
  metrics.setLags([{ topic: "events", partition: 1, lag: 3 }]);
  text = await metrics.text();
  assert.equal(sampleValue(text, lag, { topic: "events", partition: "0" }), undefined);
  assert.equal(sampleValue(text, lag, { topic: "events", partition: "1" }), 3);
  metrics.setLags(undefined);
  assert.equal(parseSamples(await metrics.text()).filter((s) => s.name === lag).length, 0);
  metrics.setLag("wal", 0, -5); // a commit racing the read never shows a negative lag
  assert.equal(sampleValue(await metrics.text(), lag, { topic: "wal", partition: "0" }), 0);
});

Deno.test("walLagProbe() is the WAL's next offset minus the committed offset", async () => {
  const wal = { nextOffset: 120 };
  const input = { committed: 100 };
  const probe = walLagProbe(wal, input);
  assert.deepEqual(await probe(), [{ topic: WAL_TOPIC, partition: 0, lag: 20 }]);
  input.committed = 120;
  assert.deepEqual(await probe(), [{ topic: WAL_TOPIC, partition: 0, lag: 0 }]);
});

Deno.test("throttleLagProbe()", async (t) => {
  const reading: PartitionLag[] = [{ topic: "t", partition: 0, lag: 1 }];

  await t.step("reuses a reading within the interval", async () => {
    let now = 0;
    let calls = 0;
    const read = throttleLagProbe(() => (calls++, Promise.resolve(reading)), {
      intervalMs: 5000,
      now: () => now,
    });
    assert.deepEqual(await read(), reading);
    now = 4999;
    assert.deepEqual(await read(), reading);
    assert.equal(calls, 1);
    now = 5000;
    await read();
    assert.equal(calls, 2);
  });

  await t.step("gives up after the timeout, reports it, and starts no second read", async () => {
    let now = 0;
    let calls = 0;
    let hang = true;
    let release: (v: PartitionLag[]) => void = () => {};
    const errors: unknown[] = [];
    const read = throttleLagProbe(
      () => {
        calls++;
        if (!hang) return Promise.resolve(reading);
        return new Promise<PartitionLag[]>((resolve) => release = resolve);
      },
      { intervalMs: 10, timeoutMs: 20, now: () => now, onError: (e) => errors.push(e) },
    );
    const started = performance.now();
    assert.equal(await read(), undefined);
    assert.ok(performance.now() - started < 1000);
    assert.match(String(errors[0]), /timed out after 20 ms/);
    now = 100;
    assert.equal(await read(), undefined); // the first read still hangs: no second one
    assert.equal(calls, 1);
    release(reading);
    await new Promise((r) => setTimeout(r, 0));
    hang = false;
    now = 200;
    assert.deepEqual(await read(), reading);
    assert.equal(calls, 2);
  });

  await t.step("a probe that throws is an unknown lag, not a failed scrape", async () => {
    const errors: unknown[] = [];
    const read = throttleLagProbe(() => {
      throw new Error("no admin");
    }, { onError: (e) => errors.push(e) });
    assert.equal(await read(), undefined);
    assert.match(String(errors[0]), /no admin/);
  });
});

Deno.test("instrumentLakeJobs() counts every run with its status, duration and rows", async () => {
  const metrics = new Metrics();
  const reports = [
    { job: "all" as const, status: "ok" as const, duration_ms: 2500, rows: 40 },
    { job: "silver" as const, status: "skipped" as const, duration_ms: 1, rows: 0 },
  ];
  const jobs = {
    calls: [] as string[],
    run(name: "silver" | "gold" | "all") {
      this.calls.push(name);
      return Promise.resolve(reports.shift()!);
    },
  };
  instrumentLakeJobs(jobs, metrics);
  assert.equal((await jobs.run("all")).rows, 40);
  await jobs.run("silver");
  assert.deepEqual(jobs.calls, ["all", "silver"]);
  const text = await metrics.text();
  assert.equal(
    sampleValue(text, "streamgate_lake_job_runs_total", { job: "all", status: "ok" }),
    1,
  );
  assert.equal(
    sampleValue(text, "streamgate_lake_job_runs_total", { job: "silver", status: "skipped" }),
    1,
  );
  assert.equal(sampleValue(text, "streamgate_lake_job_rows_total", { job: "all" }), 40);
  assert.equal(sampleValue(text, "streamgate_lake_job_seconds_bucket", { job: "all", le: "1" }), 0);
  assert.equal(sampleValue(text, "streamgate_lake_job_seconds_bucket", { job: "all", le: "5" }), 1);
  assert.equal(sampleValue(text, "streamgate_lake_job_seconds_sum", { job: "all" }), 2.5);
});

Deno.test("Metrics.fraudAlert() counts each fired rule with its severity; unknown names collapse", async () => {
  const metrics = new Metrics();
  metrics.fraudAlert([
    { name: "login_burst_then_purchase", severity: "critical" },
    { name: "card_velocity", severity: "high" },
  ]);
  metrics.fraudAlert([{ name: "made_up_rule", severity: "apocalyptic" }]);
  const text = await metrics.text();
  const alerts = "streamgate_fraud_alerts_total";
  assert.equal(
    sampleValue(text, alerts, { rule: "login_burst_then_purchase", severity: "critical" }),
    1,
  );
  assert.equal(sampleValue(text, alerts, { rule: "card_velocity", severity: "high" }), 1);
  assert.equal(sampleValue(text, alerts, { rule: "other", severity: "other" }), 1);
});

Deno.test("Metrics.llmDisagreement() counts by severity and verdict; unknown values collapse", async () => {
  const metrics = new Metrics();
  metrics.llmDisagreement("critical", "legitimate");
  metrics.llmDisagreement("critical", "legitimate");
  metrics.llmDisagreement("high", "suspicious");
  metrics.llmDisagreement("apocalyptic", "ignore previous instructions");
  const text = await metrics.text();
  const name = "streamgate_llm_disagreements_total";
  assert.equal(sampleValue(text, name, { severity: "critical", verdict: "legitimate" }), 2);
  assert.equal(sampleValue(text, name, { severity: "high", verdict: "suspicious" }), 1);
  assert.equal(sampleValue(text, name, { severity: "other", verdict: "other" }), 1);
  assert.deepEqual(labelValues(text, name, "verdict").sort(), [
    "legitimate",
    "other",
    "suspicious",
  ]);
});

/** Whether `promtool` (Prometheus' own checker) is installed. */
async function hasPromtool(): Promise<boolean> {
  try {
    return (await new Deno.Command("promtool", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output()).success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "Metrics.text() passes `promtool check metrics` with every metric reported",
  ignore: !await hasPromtool(),
  async fn() {
    const metrics = new Metrics();
    metrics.events("accepted", "http", ["purchase", "made-up"]);
    metrics.deadLetters([{ source: "kafka" }]);
    metrics.ingestPending(3);
    metrics.lakeFlushed({ rows: 3, files: [1], bytes: 100 }, 5);
    metrics.setLag("events", 0, 7);
    metrics.fraudAlert([{ name: "card_velocity", severity: "high" }]);
    metrics.fraudScoringDegraded(1);
    metrics.rateLimitUnchecked("open");
    metrics.llmCall("ok");
    metrics.llmCallDuration(120);
    metrics.llmDisagreement("critical", "legitimate");
    metrics.httpRequest("GET", "/alerts", 200, 3);
    metrics.lakeJob({ job: "silver", status: "ok", duration_ms: 10, rows: 5 });
    const child = new Deno.Command("promtool", {
      args: ["check", "metrics"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(await metrics.text()));
    await writer.close();
    const out = await child.output();
    const said = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.ok(out.success, `promtool check metrics failed: ${said}`);
    assert.equal(said.trim(), "", "no lint findings");
  },
});

Deno.test("Ingestor with metrics: received, accepted, rejected, dead letters and pending", async () => {
  const metrics = new Metrics();
  const log = new MemoryLog();
  const ingestor = new Ingestor(log, new MemoryDeadLetters(), {
    validation: VALIDATION,
    timeoutMs: 1000,
    now: () => NOW_MS,
    metrics,
  });
  log.mode = "hang";
  const result = ingestor.ingest([
    ok(rawEvent("purchase", { amount: 5 })),
    ok(rawEvent("purchase", { amount: "lots" })), // rejected: amount is not a number
    ok(rawEvent("brand_new_type")), // accepted into `other`
    ok({ user_id: "u-1" }), // no type
    { ok: false, raw: "{", message: "Unexpected end of JSON input" },
  ], "req-1");
  await new Promise((r) => setTimeout(r, 0));
  let text = await metrics.text();
  assert.equal(sampleValue(text, "streamgate_ingest_pending_events"), 2);
  log.release();
  assert.equal((await result).accepted, 2);
  text = await metrics.text();
  assert.equal(sampleValue(text, "streamgate_ingest_pending_events"), 0);
  const v = (name: string, type: string) =>
    sampleValue(text, `streamgate_events_${name}_total`, { source: "http", type });
  assert.equal(v("received", "purchase"), 2);
  assert.equal(v("received", "other"), 1);
  assert.equal(v("received", "unknown"), 2);
  assert.equal(v("accepted", "purchase"), 1);
  assert.equal(v("accepted", "other"), 1);
  assert.equal(v("rejected", "purchase"), 1);
  assert.equal(v("rejected", "unknown"), 2);
  assert.equal(v("rejected", "other"), undefined);
  assert.equal(sampleValue(text, "streamgate_dead_letters_total", { source: "http" }), 3);
});

Deno.test("LakeLoader with metrics: Kafka records by type, dead letters, bronze writes; WAL records not recounted", async () => {
  const metrics = new Metrics();
  const writes: BronzeBatch[] = [];
  const loader = new LakeLoader(
    {
      write(batch): Promise<BronzeWriteResult> {
        writes.push(batch);
        return Promise.resolve({ rows: batch.rows.length, skipped: 0, files: ["f"], bytes: 321 });
      },
    },
    new MemoryDeadLetters(),
    {
      validation: VALIDATION,
      flushRows: 1000,
      flushBytes: 1 << 30,
      flushIntervalMs: 60_000,
      commit: () => Promise.resolve(),
      onError: (err) => {
        throw err;
      },
      metrics,
    },
  );
  const enc = new TextEncoder();
  const record = (topic: string, offset: number, value: string): LogRecord => ({
    topic,
    partition: 0,
    offset,
    timestampMs: NOW_MS,
    value: enc.encode(value),
  });
  try {
    await loader.handle([
      record("seeds", 0, JSON.stringify(rawEvent("login"))),
      record("seeds", 1, JSON.stringify(rawEvent("refund", {}))), // rejected: no order_id
      record("seeds", 2, "not json"),
    ]);
    await loader.handle([record(WAL_TOPIC, 0, JSON.stringify(rawEvent("login")))]);
    await loader.flushAll();
  } finally {
    await loader.close();
  }
  const text = await metrics.text();
  const v = (name: string, source: string, type: string) =>
    sampleValue(text, `streamgate_events_${name}_total`, { source, type });
  assert.equal(v("received", "kafka", "login"), 1);
  assert.equal(v("received", "kafka", "refund"), 1);
  assert.equal(v("received", "kafka", "unknown"), 1);
  assert.equal(v("accepted", "kafka", "login"), 1);
  assert.equal(v("rejected", "kafka", "refund"), 1);
  assert.equal(v("rejected", "kafka", "unknown"), 1);
  assert.equal(v("received", "http", "login"), undefined);
  assert.equal(sampleValue(text, "streamgate_dead_letters_total", { source: "kafka" }), 2);
  assert.equal(writes.length, 2);
  assert.equal(sampleValue(text, "streamgate_lake_rows_written_total"), 2);
  assert.equal(sampleValue(text, "streamgate_lake_files_written_total"), 2);
  assert.equal(sampleValue(text, "streamgate_lake_bytes_written_total"), 642);
  assert.equal(sampleValue(text, "streamgate_lake_flush_seconds_count"), 2);
});

Deno.test("FraudDetector with metrics counts events scored without their windows", async () => {
  const metrics = new Metrics();
  const down: WindowStore = {
    kind: "down",
    run: () => Promise.reject(new Error("connection refused")),
    ping: () => Promise.reject(new Error("connection refused")),
    close: () => Promise.resolve(),
  };
  const detector = new FraudDetector(down, {
    thresholds: DEFAULT_THRESHOLDS,
    cooldownMs: 60_000,
    metrics,
  });
  const scored = await detector.score([envelope("login"), envelope("purchase")]);
  assert.ok(scored.every((s) => s.degraded));
  const text = await metrics.text();
  assert.equal(sampleValue(text, "streamgate_fraud_scoring_degraded_total"), 2);
});

Deno.test("AlertPipeline with metrics counts a raised alert per rule", async () => {
  const metrics = new Metrics();
  const sink: AlertSink = {
    name: "null",
    send: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  const pipeline = new AlertPipeline(undefined, [sink], createLogger({ write: () => {} }), {
    metrics,
  });
  const event = envelope("purchase", "mallory");
  await pipeline.raise({
    alertId: alertIdOf(event),
    scored: {
      event,
      decision: {
        score: 0.9,
        decision: "block",
        rules: [
          { name: "login_burst_then_purchase", severity: "critical", reason: "15 logins" },
          { name: "high_value_purchase", severity: "medium", reason: "large" },
        ],
      },
    },
    window: [summarize(event)],
  });
  const text = await metrics.text();
  const alerts = "streamgate_fraud_alerts_total";
  assert.equal(
    sampleValue(text, alerts, { rule: "login_burst_then_purchase", severity: "critical" }),
    1,
  );
  assert.equal(sampleValue(text, alerts, { rule: "high_value_purchase", severity: "medium" }), 1);
  assert.equal(sampleValue(text, "streamgate_llm_disagreements_total"), undefined);
});

Deno.test("AlertPipeline with metrics counts an alert where the LLM disagrees with the rules", async () => {
  const metrics = new Metrics();
  const sink: AlertSink = {
    name: "null",
    send: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  const obeying: Judge = {
    judge: () =>
      Promise.resolve({
        status: "ok",
        verdict: { fraud_score: 0, verdict: "legitimate", rationale: "verified staff" },
        model: "m",
        latencyMs: 1,
      }),
  };
  const pipeline = new AlertPipeline(obeying, [sink], createLogger({ write: () => {} }), {
    metrics,
  });
  const event = envelope("purchase", "mallory");
  const alert = await pipeline.raise({
    alertId: alertIdOf(event),
    scored: {
      event,
      decision: {
        score: 0.9,
        decision: "block",
        rules: [{ name: "login_burst_then_purchase", severity: "critical", reason: "15 logins" }],
      },
    },
    window: [summarize(event)],
  });
  assert.equal(alert.llm_disagrees, true);
  const text = await metrics.text();
  assert.equal(
    sampleValue(text, "streamgate_llm_disagreements_total", {
      severity: "critical",
      verdict: "legitimate",
    }),
    1,
  );
});

Deno.test("LlmJudge with metrics counts outcomes and times the calls that reach the model", async () => {
  const fake = await startFakeOllama();
  const metrics = new Metrics();
  const judge = new LlmJudge({
    host: fake.url,
    model: "llama3.2:1b",
    timeoutMs: 100,
    retries: 0,
    cooldownMs: 60_000,
    breakerThreshold: 1,
    metrics,
  });
  const req = (userId: string) => ({ userId, ruleScore: 0.7, rules: [], events: [] });
  try {
    assert.equal((await judge.judge(req("a"), "alert-1")).status, "ok");
    assert.equal((await judge.judge(req("a"), "alert-1")).status, "ok"); // same alert: cached
    assert.equal((await judge.judge(req("a"), "alert-2")).status, "unavailable"); // cooldown
    fake.setMode({ kind: "hang" });
    assert.equal((await judge.judge(req("b"))).status, "unavailable"); // timeout, opens circuit
    assert.equal((await judge.judge(req("c"))).status, "unavailable"); // circuit open
  } finally {
    await judge.close();
    await fake.close();
  }
  const text = await metrics.text();
  const calls = (outcome: string) => sampleValue(text, "streamgate_llm_calls_total", { outcome });
  assert.equal(calls("ok"), 1);
  assert.equal(calls("cached"), 1);
  assert.equal(calls("cooldown"), 1);
  assert.equal(calls("timeout"), 1);
  assert.equal(calls("circuit_open"), 1);
  assert.equal(sampleValue(text, "streamgate_llm_call_seconds_count"), 2);
  // The timed-out call took at least its 100 ms deadline.
  assert.ok(sampleValue(text, "streamgate_llm_call_seconds_bucket", { le: "0.05" })! <= 1);
  assert.equal(sampleValue(text, "streamgate_llm_call_seconds_bucket", { le: "+Inf" }), 2);
  assert.ok(sampleValue(text, "streamgate_llm_call_seconds_sum")! >= 0.1);
});

Deno.test("outcomeKind() maps the judge's reasons to bounded labels", () => {
  const u = (reason: string) => outcomeKind({ status: "unavailable", reason });
  assert.equal(u("timeout after 100 ms (2 attempts)"), "timeout");
  assert.equal(u('invalid reply: not JSON: "x"'), "invalid_reply");
  assert.equal(u("circuit open until 2026-01-01T00:00:00.000Z"), "circuit_open");
  assert.equal(u("circuit half-open: trial call in flight"), "circuit_open");
  assert.equal(u("queue full"), "queue_full");
  assert.equal(u("cooldown until 2026-01-01T00:00:00.000Z"), "cooldown");
  assert.equal(u("shutting down"), "shutdown");
  assert.equal(u("network error: connection refused"), "error");
  assert.equal(u("HTTP 500: boom"), "error");
  assert.equal(u('model "x" not found (HTTP 404)'), "error");
});
