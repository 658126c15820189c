/**
 * Which files a query reads, as DuckDB list literals that fit its statements. Files come from
 * snapshots of the tables' Delta logs (committed files only, never a listing).
 *
 * Events are read from silver (deduplicated, sorted by user) for what silver has taken, and from
 * bronze for the rest (the tail: batches past silver's watermarks, at most one jobs interval).
 * - Silver is partitioned by the occurred date: events that occurred in `[from, to)` live in
 *   `dt ∈ [date(from), date(to − 1 µs)]`.
 * - Bronze is partitioned by the received date and `type`. `received_at` is at most `maxPastDays`
 *   after `occurred_at` and at most `maxFutureSeconds` before it (the gateway's validation
 *   bounds), so events that occurred in `[from, to)` live in
 *   `dt ∈ [date(from − maxFutureSeconds), date(to + maxPastDays)]`.
 * - Both are then pruned by the `occurred_at` min/max each file's `add.stats` records (no footer
 *   is opened).
 * - For one user, silver's small files (late events, rejects: about half of its files) are pruned
 *   by the `user_key`s their `add.tags` list (`FileTags.userKeys`, written by `silver/write.ts`).
 *
 * DuckDB-wasm passes the SQL text (and each string parameter) on its 64 KiB C stack: a statement
 * of more than ~60 KB fails with "memory access out of bounds" and leaves the instance broken, and
 * a list of ~500 bronze paths is already that long. Longer lists are split into several statements
 * whose results are merged by the caller.
 *
 * @module
 */
import type { Lake } from "../lake.ts";
import { localFiles, parseBronzeFile, SILVER_DOMAINS } from "../layout.ts";
import { type AddFile, decodePath, type FileStats, fileTags } from "../delta/protocol.ts";
import type { DeltaTable } from "../delta/table.ts";
import { readSilverProgress, SILVER_LAYOUT } from "../silver/plan.ts";
import { DOMAINS, type EventType } from "../../shared/schemas.ts";
import { MAX_US, MIN_US } from "./params.ts";

/** Longest file list literal in one statement, in bytes (DuckDB-wasm's stack is 64 KiB). */
export const LIST_BUDGET = 12_000;

/** The gateway's bounds on how long after (or before) `occurred_at` an event is received, in µs. */
export interface ReceptionBounds {
  maxPastUs: number;
  maxFutureUs: number;
}

/**
 * The files that may hold events that occurred in `[fromUs, toUs)` (no upper bound when `toUs` is
 * undefined), as local paths:
 * - `silver`, `rejects`: silver's files (domain tables, and its rejects), pruned by `dt` (the
 *   occurred date) and the `occurred_at` min/max of `add.stats`; empty when silver cannot answer
 *   (it never ran, or its layout predates the query columns; see {@link SILVER_LAYOUT});
 * - `tail`: the bronze files silver has not taken yet (every bronze file when silver cannot
 *   answer), pruned as described in the module documentation.
 */
export interface EventSources {
  silver: string[];
  rejects: string[];
  tail: string[];
}

/** The files of event queries. */
export class EventFiles {
  readonly #lake: Lake;

  constructor(lake: Lake) {
    this.#lake = lake;
  }

  /**
   * The sources of events in `[fromUs, toUs)` of partition type `type` (any when undefined), and
   * of one user when `userKey` (`userKey` of `layout.ts`) is given: silver files that list their
   * keys (`FileTags.userKeys`) without it are left out. Silver's progress is read before its
   * tables: a run that commits in between shows its rows in both silver and the tail (the caller
   * drops the second copy by log position), never in neither.
   */
  async sources(
    fromUs: number,
    toUs: number | undefined,
    type: string | undefined,
    bounds: ReceptionBounds,
    userKey?: number,
  ): Promise<EventSources> {
    const progress = await readSilverProgress(this.#lake.store);
    const useSilver = progress.layout === SILVER_LAYOUT && progress.run > 0;
    const out: EventSources = { silver: [], rejects: [], tail: [] };
    if (useSilver) {
      const from = dateOf(Math.max(MIN_US, fromUs));
      const to = toUs === undefined ? undefined : dateOf(Math.min(MAX_US, toUs) - 1);
      const domains = type === undefined
        ? SILVER_DOMAINS
        : type in DOMAINS
        ? [DOMAINS[type as EventType]]
        : [];
      const range = { from, to, fromUs, toUs, userKey };
      for (const d of domains) {
        out.silver.push(...await this.#silverFiles(this.#lake.silver(d), range));
      }
      out.rejects = await this.#silverFiles(this.#lake.silverRejects, range);
    }
    const watermarks = useSilver ? progress.watermarks : {};
    out.tail = await this.#bronzeFiles(fromUs, toUs, type, bounds, (f) => {
      const parsed = parseBronzeFile(decodePath(f.path));
      return !parsed || parsed.first >= (watermarks[`${parsed.topic}+${parsed.partition}`] ?? 0);
    });
    return out;
  }

  /**
   * Every bronze file that may hold events that occurred in `[fromUs, toUs)`, with its type and
   * its rows per hour of `occurred_at` (`add.tags`, see `FileTags`; absent for files written
   * before summaries). Store keys: nothing is downloaded.
   */
  async summaries(
    fromUs: number,
    toUs: number,
    bounds: ReceptionBounds,
  ): Promise<{ key: string; type: string; hours?: Record<string, number> }[]> {
    const table = this.#lake.bronze;
    return (await this.#bronzeAdds(fromUs, toUs, undefined, bounds)).map((f) => {
      const hours = fileTags(f).hours;
      return {
        key: table.keyOf(f.path),
        type: f.partitionValues.type ?? "",
        ...(hours ? { hours } : {}),
      };
    });
  }

  /**
   * A silver table's files of occurred dates `[from, to]` that may hold `[fromUs, toUs)` (and
   * `userKey`'s rows, when given).
   */
  async #silverFiles(
    table: DeltaTable,
    r: {
      from: string;
      to?: string | undefined;
      fromUs: number;
      toUs?: number | undefined;
      userKey?: number | undefined;
    },
  ): Promise<string[]> {
    const snapshot = await table.freshSnapshot();
    const keys = snapshot
      .filesWhere((v) => !!v.dt && v.dt >= r.from && (!r.to || v.dt <= r.to))
      .filter((f) => overlaps(snapshot.stats(f.path), r.fromUs, r.toUs))
      .filter((f) => r.userKey === undefined || mayHold(f, r.userKey))
      .map((f) => table.keyOf(f.path));
    return await localFiles(this.#lake.store, keys);
  }

  /**
   * Bronze files (that `keep` keeps) that may hold events that occurred in `[fromUs, toUs)`: by
   * `dt` (the received date) within the reception bounds, `type`, then `occurred_at` stats.
   */
  async #bronzeFiles(
    fromUs: number,
    toUs: number | undefined,
    type: string | undefined,
    bounds: ReceptionBounds,
    keep: (f: AddFile) => boolean,
  ): Promise<string[]> {
    const table = this.#lake.bronze;
    const adds = (await this.#bronzeAdds(fromUs, toUs, type, bounds)).filter(keep);
    return await localFiles(this.#lake.store, adds.map((f) => table.keyOf(f.path)));
  }

  /** See {@link #bronzeFiles}: the `add` actions. */
  async #bronzeAdds(
    fromUs: number,
    toUs: number | undefined,
    type: string | undefined,
    bounds: ReceptionBounds,
  ): Promise<AddFile[]> {
    const from = dateOf(Math.max(MIN_US, fromUs - bounds.maxFutureUs));
    const to = toUs === undefined
      ? undefined
      : dateOf(Math.min(MAX_US - 1, toUs + bounds.maxPastUs));
    const snapshot = await this.#lake.bronze.freshSnapshot();
    return snapshot
      .filesWhere((v) =>
        !!v.dt && v.dt >= from && (!to || v.dt <= to) && (!type || v.type === type)
      )
      .filter((f) => overlaps(snapshot.stats(f.path), fromUs, toUs));
  }
}

/** Whether a file may hold rows of `userKey`: unless it lists its keys without it. */
function mayHold(f: AddFile, userKey: number): boolean {
  const keys = fileTags(f).userKeys;
  return !Array.isArray(keys) || keys.includes(userKey);
}

/** Whether a file's `occurred_at` range (from `add.stats`; unknown = yes) meets `[fromUs, toUs)`. */
function overlaps(s: FileStats | undefined, fromUs: number, toUs: number | undefined): boolean {
  const lo = s?.minValues.occurred_at, hi = s?.maxValues.occurred_at;
  if (typeof lo !== "string" || typeof hi !== "string") return true;
  if (Date.parse(hi) * 1000 < fromUs) return false;
  return toUs === undefined || Date.parse(lo) * 1000 < toUs;
}

/** The UTC date of a time in µs. */
export function dateOf(us: number): string {
  return new Date(Math.floor(us / 1000)).toISOString().slice(0, 10);
}

/** A DuckDB list literal of lake paths (only paths and globs built from lake listings). */
export function sqlList(paths: readonly string[]): string {
  return `[${paths.map((p) => `'${p.replaceAll("'", "''")}'`).join(", ")}]`;
}

/** Splits paths into groups whose list literal stays within `budget` bytes. */
export function splitList(paths: readonly string[], budget: number): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let size = 2;
  for (const p of paths) {
    const n = new TextEncoder().encode(p.replaceAll("'", "''")).length + 4;
    if (n + 2 > budget) throw new Error("A lake path is too long for a query");
    if (cur.length > 0 && size + n > budget) {
      out.push(cur);
      cur = [];
      size = 2;
    }
    cur.push(p);
    size += n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Splits file entries into SQL list literals that each stay within the statement budget. */
export function chunkList(paths: readonly string[], budget = LIST_BUDGET): string[] {
  return splitList(paths, budget).map(sqlList);
}
