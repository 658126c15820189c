/**
 * The alerts table as queries read it. It is one small file per alert, so opening the files is
 * what costs: each `dt` partition is read whole once and kept in memory until its files in the
 * table's log change; filters run on the kept rows.
 *
 * @module
 */
import type { Param } from "../engine/engine.ts";
import type { Lake } from "../lake.ts";
import { localFiles } from "../layout.ts";
import { SEVERITIES, type Severity } from "../../shared/alert.ts";
import { dateOf } from "./files.ts";
import { MAX_US, MIN_US } from "./params.ts";
import { type AlertOut, cmp, type Row, toAlert, toNumber } from "./rows.ts";

/** Alerts kept in memory (a few hundred bytes to a few KB each). */
const MAX_CACHED_ALERTS = 100_000;

type CachedAlert = { us: number; alert: AlertOut };

/** Which alerts {@link AlertDays.find} returns, and how many. */
export interface AlertFilter {
  userId?: string;
  severity?: Severity;
  rule?: string;
  limit: number;
}

/** Runs a statement over `sources` (in chunks of a bounded file list) and returns the rows. */
export type Select = (
  sources: string[],
  sql: (files: string) => string,
  params: Param[],
) => Promise<Row[]>;

/** The alerts table's partitions, read whole and kept while their files stay the same. */
export class AlertDays {
  readonly #lake: Lake;
  readonly #select: Select;
  /** Alert partitions read whole, by `dt`, with the fingerprint of the listing they were read at. */
  readonly #days = new Map<string, { fingerprint: string; rows: CachedAlert[] }>();

  constructor(lake: Lake, select: Select) {
    this.#lake = lake;
    this.#select = select;
  }

  /**
   * Alerts that occurred in `[fromUs, toUs)`, filtered, newest first. The table is one small file
   * per alert, so opening the files is what costs: each `dt` partition is read whole once and kept
   * in memory until its listing changes (an alert file appears, goes or is rewritten). A partition
   * modified in the last seconds is not kept (times are in ms).
   */
  async find(
    fromUs: number,
    toUs: number,
    f: AlertFilter,
  ): Promise<AlertOut[]> {
    const from = dateOf(Math.max(MIN_US, fromUs)), to = dateOf(Math.min(MAX_US, toUs) - 1);
    const table = this.#lake.alerts;
    const byDt = new Map<string, string[]>();
    for (
      const f of (await table.snapshot()).filesWhere((v) => !!v.dt && v.dt >= from && v.dt <= to)
    ) {
      const dt = f.partitionValues.dt!;
      const list = byDt.get(dt);
      if (list) list.push(table.keyOf(f.path));
      else byDt.set(dt, [table.keyOf(f.path)]);
    }
    const found: CachedAlert[] = [];
    const load = new Map<string, { fingerprint: string; keys: string[] }>();
    for (const [dt, keys] of byDt) {
      const fingerprint = keys.join("|");
      const cached = this.#days.get(dt);
      if (cached && cached.fingerprint === fingerprint) found.push(...cached.rows);
      else load.set(dt, { fingerprint, keys });
    }
    if (load.size > 0) found.push(...await this.#load(load));
    const minRank = f.severity ? SEVERITIES.indexOf(f.severity) : -1;
    return found
      .filter(({ us, alert: a }) =>
        us >= fromUs && us < toUs &&
        (f.userId === undefined || a.user_id === f.userId) &&
        (minRank < 0 || SEVERITIES.indexOf(a.severity as Severity) >= minRank) &&
        (f.rule === undefined || a.rules.includes(f.rule))
      )
      .sort((a, b) => b.us - a.us || cmp(b.alert.alert_id, a.alert.alert_id))
      .slice(0, f.limit)
      .map((x) => structuredClone(x.alert));
  }

  /** Reads alert partitions whole, keeps them, and returns their rows. */
  async #load(
    load: Map<string, { fingerprint: string; keys: string[] }>,
  ): Promise<CachedAlert[]> {
    const sources = await localFiles(this.#lake.store, [...load.values()].flatMap((d) => d.keys));
    const rows = await this.#select(
      sources,
      (files) =>
        // Every column by name, not a list: files written before a column existed (e.g.
        // llm_disagrees) lack it, and a list would fail on a partition where none has it.
        `SELECT * EXCLUDE (raised_at, occurred_at), epoch_us(raised_at) AS raised_us,
                epoch_us(occurred_at) AS occurred_us
           FROM read_parquet(${files}, union_by_name = true, hive_partitioning = true,
                             hive_types = {'dt': VARCHAR})`,
      [],
    );
    const byDt = new Map<string, CachedAlert[]>([...load.keys()].map((dt) => [dt, []]));
    for (const r of rows) {
      const list = byDt.get(String(r.dt));
      if (list) list.push({ us: toNumber(r.occurred_us), alert: toAlert(r) });
    }
    const found: CachedAlert[] = [];
    for (const [dt, list] of byDt) {
      found.push(...list);
      // Files in a table's log never change: the listing of a partition names its content.
      const { fingerprint } = load.get(dt)!;
      this.#days.delete(dt);
      this.#days.set(dt, { fingerprint, rows: list });
    }
    let cached = 0;
    for (const d of this.#days.values()) cached += d.rows.length;
    for (const [dt, d] of this.#days) {
      if (cached <= MAX_CACHED_ALERTS) break;
      this.#days.delete(dt);
      cached -= d.rows.length;
    }
    return found;
  }
}
