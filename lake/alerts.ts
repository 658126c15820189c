/**
 * The lake's alerts table: `alerts/dt=YYYY-MM-DD/<alert_id>.parquet`, one small file per alert,
 * partitioned by the date of the event that raised it. Alert ids are deterministic, so raising the
 * same alert again after a crash rewrites the same file: one row per alert, never two. (Alerts are
 * rare by construction, one per user per cooldown; silver compacts them.)
 *
 * @module
 */
import { join } from "node:path";
import type { Column, LakeEngine } from "./engine/engine.ts";
import { type Alert, maxSeverity } from "../shared/alert.ts";
import { isoToMicros } from "../shared/time.ts";
import { syncDir } from "../shared/fs.ts";
import { makeDurableOrRecycle } from "./bronze.ts";
import type { LakeRoot } from "./disk.ts";

/** The table's directory under the lake root. */
export const ALERTS_TABLE = "alerts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** The file of one alert; refuses anything but a UUID and a date, so no user string is a path. */
export function alertFile(lakeDir: string, alert: Pick<Alert, "alert_id" | "occurred_at">): string {
  const dt = alert.occurred_at.slice(0, 10);
  if (!UUID.test(alert.alert_id)) throw new Error(`Invalid alert id "${alert.alert_id}"`);
  if (!DATE.test(dt)) throw new Error(`Invalid alert date "${dt}"`);
  return join(lakeDir, ALERTS_TABLE, `dt=${dt}`, `${alert.alert_id}.parquet`);
}

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
    severity: text(maxSeverity(a)),
    reasons: text(JSON.stringify(a.rules)),
    llm_status: text(llm.status),
    llm_score: {
      kind: "float64_nullable",
      values: [llm.status === "ok" ? llm.fraud_score : null],
    },
    llm_verdict: text(llm.status === "ok" ? llm.verdict : null),
    llm_rationale: text(llm.status === "ok" ? llm.rationale : llm.reason),
    window_summary: text(JSON.stringify(a.window)),
    event_ids: text(JSON.stringify(a.event_ids)),
    degraded: text(a.degraded ?? null),
  };
}

/** Writes alerts into the lake, one durable file each (staging, fsync, rename, fsync dir). */
export class LakeAlertSink {
  readonly name = "lake";
  readonly #engine: LakeEngine;
  readonly #lakeDir: string;
  readonly #root: LakeRoot | undefined;

  /** With `root`, every send first checks the lake is still the directory it was at start. */
  constructor(engine: LakeEngine, lakeDir: string, options: { root?: LakeRoot | undefined } = {}) {
    this.#engine = engine;
    this.#lakeDir = lakeDir;
    this.#root = options.root;
  }

  async send(alerts: Alert[]): Promise<void> {
    await this.#root?.check();
    for (const a of alerts) {
      const path = alertFile(this.#lakeDir, a);
      const staging = join(this.#lakeDir, "_staging", ALERTS_TABLE);
      await Deno.mkdir(staging, { recursive: true });
      // A name of its own per write: two sends of one alert (a retry racing a re-score) must not
      // share a staging file, or one could rename the other's half-written file into place.
      const tmp = join(staging, `${a.alert_id}.${crypto.randomUUID()}.parquet`);
      await this.#engine.writeParquet(columns(a), tmp);
      await makeDurableOrRecycle(this.#engine, tmp);
      const dir = join(path, "..");
      await Deno.mkdir(dir, { recursive: true });
      await Deno.rename(tmp, path);
      await syncDir(dir);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
