/**
 * The lake's alerts table: `alerts/dt=YYYY-MM-DD/<alert_id>.parquet`, one small file per alert,
 * partitioned by the date of the event that raised it. Alert ids are deterministic, so raising the
 * same alert again after a crash rewrites the same file: one row per alert, never two. (Alerts are
 * rare by construction, one per user per cooldown; silver compacts them.)
 *
 * @module
 */
import type { Column, LakeEngine } from "./engine/engine.ts";
import type { Alert } from "../shared/alert.ts";
import { isoToMicros } from "../shared/time.ts";
import { alertKey } from "./layout.ts";
import type { ObjectStore } from "./storage/store.ts";

function columns(a: Alert): Record<string, Column> {
  const text = (v: string | null): Column => ({ kind: "utf8", values: [v] });
  const llm = a.llm;
  return {
    alert_id: text(a.alert_id),
    user_id: text(a.user_id),
    raised_at: { kind: "timestamp_us", values: Float64Array.of(isoToMicros(a.raised_at)) },
    occurred_at: { kind: "timestamp_us", values: Float64Array.of(isoToMicros(a.occurred_at)) },
    trigger_event_id: text(a.trigger_event_id),
    trigger_type: text(a.trigger_type),
    rule_score: { kind: "float64", values: Float64Array.of(a.rule_score) },
    fraud_score: { kind: "float64", values: Float64Array.of(a.fraud_score) },
    rules: text(a.rules.map((r) => r.name).join(",")),
    severity: text(a.severity),
    reasons: text(JSON.stringify(a.rules)),
    llm_status: text(llm.status),
    llm_score: { kind: "float64_nullable", values: [a.llm_score] },
    llm_disagrees: { kind: "bool", values: [a.llm_disagrees] },
    llm_verdict: text(llm.status === "ok" ? llm.verdict : null),
    llm_rationale: text(llm.status === "ok" ? llm.rationale : llm.reason),
    window_summary: text(JSON.stringify(a.window)),
    event_ids: text(JSON.stringify(a.event_ids)),
    degraded: text(a.degraded ?? null),
  };
}

/** Writes alerts into the lake, one object each. */
export class LakeAlertSink {
  readonly name = "lake";
  readonly #engine: LakeEngine;
  readonly #store: ObjectStore;

  constructor(engine: LakeEngine, store: ObjectStore) {
    this.#engine = engine;
    this.#store = store;
  }

  async send(alerts: Alert[]): Promise<void> {
    // One whole object per alert id: two sends of one alert (a retry racing a re-score) each
    // replace it whole, so the table keeps one row per alert.
    for (const a of alerts) {
      await this.#store.put(alertKey(a), await this.#engine.parquet(columns(a)));
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
