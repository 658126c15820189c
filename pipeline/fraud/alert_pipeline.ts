/**
 * The alert pipeline: what a flagged event becomes. It asks the LLM judge (when there is one) for a
 * verdict on the user's recent events, then hands the alert to every sink (the log, the alerts
 * topic in Kafka mode, the lake's alerts table). The verdict adds to the rules' decision, never
 * takes it away: it can raise the alert's score and severity, not lower them, and an alert where it
 * disagrees strongly with the rules says so. It never blocks ingestion: the LLM call is bounded
 * by the judge's timeout, queue and circuit breaker, and when it has no verdict the alert goes out
 * on the rules alone, saying why.
 *
 * @module
 */
import type { Metrics } from "../../shared/metrics.ts";
import type { Logger } from "../../shared/logger.ts";
import type { AlertCandidate } from "./detector.ts";
import { type Alert, type LlmPart, maxSeverity } from "../../shared/alert.ts";
import { combineScores } from "../../shared/alert_score.ts";
import type { Judge } from "./judge.ts";
import type { AlertSink } from "./sinks.ts";

/** Options of {@link AlertPipeline}. */
export interface AlertPipelineOptions {
  /** Alerts between flag and sinks at once; beyond it the LLM is skipped ("queue full"). */
  maxPending?: number;
  /** Attempts per sink before the alert is logged as undeliverable to it. */
  sinkAttempts?: number;
  /** Base backoff between sink attempts. */
  sinkBackoffMs?: number;
  /**
   * Counts raised alerts per rule and severity (`streamgate_fraud_alerts_total`), and those where
   * the LLM disagrees with the rules (`streamgate_llm_disagreements_total`).
   */
  metrics?: Metrics;
}

/** Counters, for metrics. */
export interface AlertStats {
  raised: number;
  withLlm: number;
  withoutLlm: number;
  sinkFailures: number;
}

/**
 * Builds the alert from a candidate and the LLM's part. The scores and the severity combine as
 * {@link combineScores} says: the rules are a floor the LLM can raise, never lower.
 */
export function buildAlert(c: AlertCandidate, llm: LlmPart, now: Date): Alert {
  const { event, decision } = c.scored;
  const window = c.window.length > 0 ? c.window : [];
  const types: Record<string, number> = {};
  for (const w of window) types[w.type] = (types[w.type] ?? 0) + 1;
  const combined = combineScores(
    { score: decision.score, severity: maxSeverity(decision), decision: decision.decision },
    llm.status === "ok" ? { score: llm.fraud_score, verdict: llm.verdict } : undefined,
  );
  const alert: Alert = {
    alert_id: c.alertId,
    user_id: event.user_id,
    raised_at: now.toISOString(),
    trigger_event_id: event.event_id,
    trigger_type: event.event_type,
    occurred_at: event.occurred_at,
    rules: decision.rules,
    ...combined,
    // The LLM's own number, rounded as published, so the alert never shows two versions of it.
    llm: llm.status === "ok" && combined.llm_score !== null
      ? { ...llm, fraud_score: combined.llm_score }
      : llm,
    window: {
      events: window.length,
      types,
      first_at: window[0]?.at ?? event.occurred_at,
      last_at: window.at(-1)?.at ?? event.occurred_at,
    },
    event_ids: window.map((w) => w.event_id),
  };
  if (c.degraded) alert.degraded = c.degraded;
  return alert;
}

/** Candidate → LLM verdict (bounded) → every sink. */
export class AlertPipeline {
  readonly #judge: Judge | undefined;
  readonly #sinks: AlertSink[];
  readonly #logger: Logger;
  readonly #opts: Required<Omit<AlertPipelineOptions, "metrics">>;
  readonly #metrics: Metrics | undefined;
  #pending = 0;
  readonly stats: AlertStats = { raised: 0, withLlm: 0, withoutLlm: 0, sinkFailures: 0 };

  constructor(
    judge: Judge | undefined,
    sinks: AlertSink[],
    logger: Logger,
    options: AlertPipelineOptions = {},
  ) {
    this.#judge = judge;
    this.#sinks = sinks;
    this.#logger = logger;
    const { metrics, ...opts } = options;
    this.#opts = { maxPending: 256, sinkAttempts: 5, sinkBackoffMs: 200, ...opts };
    this.#metrics = metrics;
  }

  /** Alerts between flag and sinks now. */
  get pending(): number {
    return this.#pending;
  }

  /** Raises one alert; resolves when every sink has it or gave up (logged). Never rejects. */
  async raise(c: AlertCandidate): Promise<Alert> {
    this.#pending++;
    try {
      const llm = await this.#verdict(c);
      const alert = buildAlert(c, llm, new Date());
      this.stats.raised++;
      if (llm.status === "ok") this.stats.withLlm++;
      else this.stats.withoutLlm++;
      this.#metrics?.fraudAlert(alert.rules);
      if (alert.llm_disagrees && alert.llm.status === "ok") {
        this.#metrics?.llmDisagreement(maxSeverity(alert), alert.llm.verdict);
      }
      await Promise.all(this.#sinks.map((s) => this.#deliver(s, alert)));
      return alert;
    } finally {
      this.#pending--;
    }
  }

  async #verdict(c: AlertCandidate): Promise<LlmPart> {
    if (!this.#judge) {
      return { status: "disabled", reason: "no LLM configured (OLLAMA_HOST unset)" };
    }
    if (this.#pending > this.#opts.maxPending) {
      return { status: "unavailable", reason: "alert queue full: LLM skipped" };
    }
    const { event, decision } = c.scored;
    const out = await this.#judge.judge({
      userId: event.user_id,
      ruleScore: decision.score,
      rules: decision.rules,
      events: c.window,
    }, c.alertId);
    if (out.status !== "ok") return { status: "unavailable", reason: out.reason };
    return {
      status: "ok",
      fraud_score: out.verdict.fraud_score,
      verdict: out.verdict.verdict,
      rationale: out.verdict.rationale,
      model: out.model,
      latency_ms: Math.round(out.latencyMs),
    };
  }

  async #deliver(sink: AlertSink, alert: Alert): Promise<void> {
    for (let attempt = 1;; attempt++) {
      try {
        return await sink.send([alert]);
      } catch (err) {
        this.stats.sinkFailures++;
        if (attempt >= this.#opts.sinkAttempts) {
          this.#logger.error("Alert could not be delivered", { sink: sink.name, alert, err });
          return;
        }
        await new Promise((r) => setTimeout(r, this.#opts.sinkBackoffMs * 2 ** (attempt - 1)));
      }
    }
  }

  async close(): Promise<void> {
    for (const s of this.#sinks) await s.close();
  }
}
