// The alert pipeline: LLM part present, missing or disabled; sinks retried; the lake's alerts table.
import assert from "node:assert/strict";

import { LakeAlertSink } from "../../lake/alerts.ts";
import { alertFile } from "../../lake/layout.ts";
import { LakeEngine } from "../../lake/engine/engine.ts";
import { lakeOf, readAlerts } from "../../tests/lake_helpers.ts";
import { createLogger } from "../../shared/logger.ts";
import type { Envelope } from "../../shared/schemas.ts";
import { AlertPipeline } from "./alert_pipeline.ts";
import type { Judge, JudgeOutcome } from "./judge.ts";
import { type AlertSink, LogAlertSink, SUSPICIOUS } from "./sinks.ts";
import { type Alert } from "../../shared/alert.ts";
import { type AlertCandidate, alertIdOf, summarize } from "./detector.ts";

function candidate(user = "mallory"): AlertCandidate {
  const at = "2026-11-20T10:00:30.000Z";
  const event: Envelope = {
    event_id: crypto.randomUUID(),
    type: "purchase",
    event_type: "purchase",
    user_id: user,
    occurred_at: at,
    received_at: at,
    source: "test",
    payload: { amount: 99, currency: "USD" },
  };
  const login: Envelope = { ...event, event_id: crypto.randomUUID(), type: "login" };
  login.event_type = "login";
  return {
    alertId: alertIdOf(event),
    scored: {
      event,
      decision: {
        score: 0.9,
        decision: "block",
        rules: [{ name: "login_burst_then_purchase", severity: "critical", reason: "15 logins" }],
      },
    },
    window: [summarize(login), summarize(event)],
  };
}

class MemorySink implements AlertSink {
  readonly name = "memory";
  alerts: Alert[] = [];
  failures = 0;
  send(alerts: Alert[]): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      return Promise.reject(new Error("broker unavailable"));
    }
    this.alerts.push(...alerts);
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const fixedJudge = (out: JudgeOutcome): Judge & { calls: unknown[] } => {
  const calls: unknown[] = [];
  return {
    calls,
    judge: (req, key) => (calls.push({ req, key }), Promise.resolve(out)),
  };
};

Deno.test("an alert with an LLM verdict carries both scores, the combined one, the rules and the window", async () => {
  const sink = new MemorySink();
  const judge = fixedJudge({
    status: "ok",
    verdict: { fraud_score: 0.85, verdict: "fraud", rationale: "bot-like burst" },
    model: "llama3.2:1b",
    latencyMs: 12.4,
  });
  const pipeline = new AlertPipeline(judge, [sink], createLogger({ write: () => {} }));
  const c = candidate();
  const alert = await pipeline.raise(c);
  assert.deepEqual(sink.alerts, [alert]);
  assert.equal(alert.alert_id, c.alertId);
  assert.equal(alert.rule_score, 0.9);
  assert.equal(alert.llm_score, 0.85);
  // The rules are a floor: an LLM score below them does not lower the alert.
  assert.equal(alert.fraud_score, 0.9);
  assert.equal(alert.severity, "critical");
  assert.equal(alert.llm_disagrees, false, "0.05 below the rules, and a fraud verdict");
  assert.deepEqual(alert.llm, {
    status: "ok",
    fraud_score: 0.85,
    verdict: "fraud",
    rationale: "bot-like burst",
    model: "llama3.2:1b",
    latency_ms: 12,
  });
  assert.deepEqual(alert.rules.map((r) => r.name), ["login_burst_then_purchase"]);
  assert.deepEqual(alert.window.types, { login: 1, purchase: 1 });
  assert.deepEqual(alert.event_ids, c.window.map((w) => w.event_id));
  // The judge saw the user's window and the alert id as its dedupe key.
  assert.deepEqual(judge.calls, [{
    req: { userId: "mallory", ruleScore: 0.9, rules: alert.rules, events: c.window },
    key: c.alertId,
  }]);
  assert.equal(pipeline.stats.withLlm, 1);
});

Deno.test("without a verdict the alert goes out on the rules, saying why", async () => {
  const sink = new MemorySink();
  const down = new AlertPipeline(
    fixedJudge({ status: "unavailable", reason: "circuit open until 10:05" }),
    [sink],
    createLogger({ write: () => {} }),
  );
  const a = await down.raise(candidate());
  assert.deepEqual(a.llm, { status: "unavailable", reason: "circuit open until 10:05" });
  assert.equal(a.fraud_score, a.rule_score);
  assert.equal(a.llm_score, null);
  assert.equal(a.llm_disagrees, false);
  assert.equal(a.severity, "critical");

  const rulesOnly = new AlertPipeline(undefined, [sink], createLogger({ write: () => {} }));
  const b = await rulesOnly.raise(candidate());
  assert.equal(b.llm.status, "disabled");
  assert.match((b.llm as { reason: string }).reason, /OLLAMA_HOST unset/);
  assert.equal(sink.alerts.length, 2);
});

/** A pipeline whose judge answers `verdict`, raising one candidate into a memory sink. */
async function raiseWith(verdict: { fraud_score: number; verdict: string; rationale: string }) {
  const sink = new MemorySink();
  const judge = fixedJudge({ status: "ok", verdict, model: "m", latencyMs: 1 });
  const pipeline = new AlertPipeline(judge, [sink], createLogger({ write: () => {} }));
  return await pipeline.raise(candidate());
}

Deno.test("an obeying model (score 0, legitimate) cannot lower a critical alert: it is flagged", async () => {
  const a = await raiseWith({ fraud_score: 0, verdict: "legitimate", rationale: "verified staff" });
  assert.equal(a.rule_score, 0.9);
  assert.equal(a.llm_score, 0);
  assert.equal(a.fraud_score, 0.9);
  assert.equal(a.severity, "critical");
  assert.equal(a.llm_disagrees, true);
  // The verdict and rationale still go out beside the rules' reasons.
  assert.equal(a.llm.status === "ok" && a.llm.verdict, "legitimate");
  assert.equal(a.rules[0]?.name, "login_burst_then_purchase");
});

Deno.test("an LLM score above the rules' raises the alert's score", async () => {
  const a = await raiseWith({ fraud_score: 0.97, verdict: "fraud", rationale: "bot" });
  assert.equal(a.rule_score, 0.9);
  assert.equal(a.llm_score, 0.97);
  assert.equal(a.fraud_score, 0.97);
  assert.equal(a.llm_disagrees, false);
});

Deno.test("the LLM's score is published rounded to 3 places, the same in llm and llm_score", async () => {
  const a = await raiseWith({ fraud_score: 0.95449, verdict: "fraud", rationale: "bot" });
  assert.equal(a.llm_score, 0.954);
  assert.equal(a.fraud_score, 0.954);
  assert.equal(a.llm.status === "ok" && a.llm.fraud_score, 0.954);
});

Deno.test("a failing sink is retried; one that never recovers is logged, not fatal", async () => {
  const lines: string[] = [];
  const logger = createLogger({ write: (_l, line) => lines.push(line) });
  const flaky = new MemorySink();
  flaky.failures = 2;
  const dead = new MemorySink();
  dead.failures = 100;
  const pipeline = new AlertPipeline(undefined, [flaky, dead], logger, {
    sinkAttempts: 3,
    sinkBackoffMs: 1,
  });
  const alert = await pipeline.raise(candidate());
  assert.deepEqual(flaky.alerts, [alert]);
  assert.equal(dead.alerts.length, 0);
  assert.equal(pipeline.stats.sinkFailures, 2 + 3);
  const logged = lines.map((l) => JSON.parse(l)).find((l) =>
    l.msg === "Alert could not be delivered"
  );
  assert.equal(logged?.alert?.alert_id, alert.alert_id);
});

Deno.test("the log sink writes the seeds' [SUSPICIOUS] Fraud Detected line with user and score", async () => {
  const lines: string[] = [];
  const sink = new LogAlertSink(createLogger({ write: (_l, line) => lines.push(line) }));
  const pipeline = new AlertPipeline(undefined, [sink], createLogger({ write: () => {} }));
  await pipeline.raise(candidate('eve "\n" injected'));
  assert.equal(lines.length, 1, "one line, even with a newline in the user id");
  const entry = JSON.parse(lines[0]!);
  assert.equal(entry.level, "warn");
  assert.ok(entry.msg.startsWith(SUSPICIOUS));
  assert.match(entry.msg, /user "eve \\"\\n\\" injected" score 0\.9$/);
  assert.equal(entry.user_id, 'eve "\n" injected');
});

Deno.test("the log line carries the rule, LLM and combined scores, severity and disagreement", async () => {
  const lines: string[] = [];
  const sink = new LogAlertSink(createLogger({ write: (_l, line) => lines.push(line) }));
  const judge = fixedJudge({
    status: "ok",
    verdict: { fraud_score: 0, verdict: "legitimate", rationale: "staff" },
    model: "m",
    latencyMs: 1,
  });
  await new AlertPipeline(judge, [sink], createLogger({ write: () => {} })).raise(candidate());
  const entry = JSON.parse(lines[0]!);
  assert.match(entry.msg, / score 0\.9$/);
  assert.equal(entry.rule_score, 0.9);
  assert.equal(entry.llm_score, 0);
  assert.equal(entry.fraud_score, 0.9);
  assert.equal(entry.severity, "critical");
  assert.equal(entry.llm_disagrees, true);
  assert.equal(entry.llm.verdict, "legitimate");
});

Deno.test("the lake alerts table: one row per alert id, even when raised twice", async () => {
  const lake = await Deno.makeTempDir({ prefix: "alerts_" });
  const engine = new LakeEngine();
  try {
    const sink = new LakeAlertSink(engine, (await lakeOf(lake, engine)).alerts);
    const pipeline = new AlertPipeline(
      fixedJudge({
        status: "ok",
        verdict: { fraud_score: 0.8, verdict: "fraud", rationale: "r" },
        model: "m",
        latencyMs: 1,
      }),
      [sink],
      createLogger({ write: () => {} }),
    );
    const c = candidate();
    const first = await pipeline.raise(c);
    await pipeline.raise(c); // a replay after a crash
    const other = await pipeline.raise(candidate("trudy"));
    const rows = await readAlerts(engine, lake);
    assert.equal(rows.length, 2);
    const row = rows.find((r) => r.alert_id === first.alert_id)!;
    assert.equal(row.user_id, "mallory");
    assert.equal(row.dt, "2026-11-20");
    assert.equal(row.rules, "login_burst_then_purchase");
    assert.equal(row.severity, "critical");
    assert.equal(row.llm_status, "ok");
    assert.equal(row.llm_score, 0.8);
    assert.equal(row.rule_score, 0.9);
    assert.equal(row.fraud_score, 0.9);
    assert.equal(row.llm_disagrees, false);
    assert.deepEqual(JSON.parse(row.event_ids as string), first.event_ids);
    assert.ok(rows.some((r) => r.alert_id === other.alert_id));
    assert.match(
      alertFile(first),
      new RegExp(`^dt=2026-11-20/${first.alert_id}-[0-9a-f]{8}\\.parquet$`),
    );
    assert.throws(
      () => alertFile({ ...first, alert_id: "../../etc/passwd" }),
      /Invalid alert id/,
    );
  } finally {
    engine.close();
    await Deno.remove(lake, { recursive: true });
  }
});
