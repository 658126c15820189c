/**
 * The lake's alerts table, a Delta table partitioned by the date of the event that raised each
 * alert, one small file per alert (`alerts/dt=YYYY-MM-DD/<alert_id>-<id>.parquet`). Alert ids
 * are deterministic and a send commits only the alerts the table does not hold yet, deciding
 * again when another writer committed first: raising an alert again after a crash, or a retry
 * racing a re-score, never makes a second row. (Alerts are rare by construction, one per user
 * per cooldown.)
 *
 * @module
 */
import type { Column, LakeEngine } from "./engine/engine.ts";
import type { AddFile } from "./delta/protocol.ts";
import type { DeltaTable } from "./delta/table.ts";
import type { Alert } from "../shared/alert.ts";
import { isoToMicros } from "../shared/time.ts";
import { alertFile, alertIdOf } from "./layout.ts";

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

/** Writes alerts into the lake's alerts table. */
export class LakeAlertSink {
  readonly name = "lake";
  readonly #engine: LakeEngine;
  readonly #table: DeltaTable;

  constructor(engine: LakeEngine, table: DeltaTable) {
    this.#engine = engine;
    this.#table = table;
  }

  async send(alerts: Alert[]): Promise<void> {
    const written = new Map<string, AddFile>();
    await this.#table.commit("WRITE", async (snapshot) => {
      const held = new Set<string>();
      for (const path of snapshot.files.keys()) {
        const id = alertIdOf(path);
        if (id) held.add(id);
      }
      // One row per alert id, even when a send holds an alert twice.
      const fresh = [...new Map(alerts.map((a) => [a.alert_id, a])).values()]
        .filter((a) => !held.has(a.alert_id));
      if (fresh.length === 0) return undefined;
      for (const a of fresh) {
        if (written.has(a.alert_id)) continue;
        const file = await this.#engine.parquet(columns(a));
        written.set(
          a.alert_id,
          await this.#table.putFile(alertFile(a), file, {
            dt: a.occurred_at.slice(0, 10),
          }),
        );
      }
      return fresh.map((a) => ({ add: written.get(a.alert_id)! }));
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
