/**
 * Which lake files a query reads, as DuckDB list literals that fit its statements.
 *
 * - Bronze is pruned by `dt` (the received date) and `type` before any file is opened.
 *   `received_at` is at most `maxPastDays` after `occurred_at` and at most `maxFutureSeconds`
 *   before it (the gateway's validation bounds), so events that occurred in `[from, to)` live in
 *   `dt ∈ [date(from − maxFutureSeconds), date(to + maxPastDays)]`. Then files are pruned by their
 *   `occurred_at` min/max, read once from each file's footer and remembered (bronze files never
 *   change): opening a file costs ~0.5 ms, which dominates most queries.
 * - On local disk, a partition directory whose files all remain is handed to DuckDB as one glob of
 *   the file names the lake writes (`<dir>/<pattern>.parquet`), not as a list of every file.
 *   DuckDB-wasm passes the SQL text (and each string parameter) on its 64 KiB C stack: a statement
 *   of more than ~60 KB fails with "memory access out of bounds" and leaves the instance broken,
 *   and a list of ~500 bronze paths is already that long. Lists that would still be too long are
 *   split into several statements whose results are merged by the caller.
 *
 * @module
 */
import { join } from "node:path";
import { type BronzeFile, listBronzeFiles, TABLES } from "../layout.ts";
import { hasLocalDirs, type ObjectStore } from "../storage/store.ts";
import { isoToMicros } from "../../shared/time.ts";
import { MAX_US, MIN_US } from "./params.ts";

/** Longest file list literal in one statement, in bytes (DuckDB-wasm's stack is 64 KiB). */
export const LIST_BUDGET = 12_000;
/** Bronze files whose footer statistics one query may read (the rest are read without pruning). */
const STATS_PER_QUERY = 4000;
/** Bronze file ranges kept in memory (~150 bytes each). */
const MAX_CACHED_RANGES = 500_000;
/** The bronze file names the writer produces (`<topic>+<partition>+<first>+<last>.parquet`). */
const BRONZE_GLOB = "*+*+????????????????????+????????????????????.parquet";

/** Reads the rows of one statement (the query API's engine, with its own guards). */
export type RunQuery = <T>(sql: string) => Promise<T[]>;

type Range = { min: number; max: number };

/** Plans the bronze files of queries; remembers each file's `occurred_at` range. */
export class BronzeFiles {
  readonly #store: ObjectStore;
  readonly #run: RunQuery;
  readonly #listBudget: number;
  /** `occurred_at` min/max (µs) of bronze files, by local path; see {@link #ranges}. */
  readonly #cache = new Map<string, Range>();

  constructor(store: ObjectStore, run: RunQuery, listBudget = LIST_BUDGET) {
    this.#store = store;
    this.#run = run;
    this.#listBudget = listBudget;
  }

  /**
   * What DuckDB reads for bronze events that occurred in `[fromUs, toUs)` (no upper bound when
   * `toUs` is undefined), given the gateway's bounds on reception delay (µs).
   */
  async sources(
    fromUs: number,
    toUs: number | undefined,
    type: string | undefined,
    bounds: { maxPastUs: number; maxFutureUs: number },
  ): Promise<string[]> {
    const from = dateOf(Math.max(MIN_US, fromUs - bounds.maxFutureUs));
    const to = toUs === undefined
      ? undefined
      : dateOf(Math.min(MAX_US - 1, toUs + bounds.maxPastUs));
    // Dates holding anything but bronze files are never globbed whole.
    const mixed = new Set<string>();
    const files = await listBronzeFiles(this.#store, {
      from,
      ...(to ? { to } : {}),
      ...(type ? { types: [type] } : {}),
      onForeign: (key) => mixed.add(key.slice(TABLES.bronze.length + 4).split("/")[0]!),
    });
    const paths = await Promise.all(files.map((f) => this.#store.localFile(f.key)));
    const ranges = await this.#ranges(paths);
    const kept = paths.map((p) => {
      const r = ranges.get(p);
      return !r || (r.max >= fromUs && (toUs === undefined || r.min < toUs));
    });
    return hasLocalDirs(this.#store)
      ? globbed(files, paths, kept, type, mixed, (prefix) => this.#localDir(prefix))
      : paths.filter((_, i) => kept[i]);
  }

  #localDir(prefix: string): string {
    return hasLocalDirs(this.#store) ? this.#store.localDir(prefix) : "";
  }

  /**
   * The `occurred_at` range of each bronze file, from its footer statistics. Bronze files never
   * change once written (a rewritten name holds the same rows), so ranges are cached; at most
   * `STATS_PER_QUERY` unknown files are read per query, the others count as overlapping.
   */
  async #ranges(paths: string[]): Promise<Map<string, Range>> {
    const missing = paths.filter((p) => !this.#cache.has(p)).slice(0, STATS_PER_QUERY);
    for (const chunkPaths of splitList(missing, this.#listBudget)) {
      const rows = await this.#run<{ file_name: string; lo: unknown; hi: unknown }>(
        `SELECT file_name, stats_min AS lo, stats_max AS hi FROM parquet_metadata(${
          sqlList(chunkPaths)
        }) WHERE path_in_schema = 'occurred_at'`,
      );
      const found = new Map<string, Range>();
      const unreadable = new Set<string>();
      for (const r of rows) {
        const lo = statsMicros(r.lo), hi = statsMicros(r.hi);
        if (lo === undefined || hi === undefined) unreadable.add(r.file_name);
        const cur = found.get(r.file_name);
        found.set(r.file_name, {
          min: Math.min(cur?.min ?? Infinity, lo ?? -Infinity),
          max: Math.max(cur?.max ?? -Infinity, hi ?? Infinity),
        });
      }
      // A file without row groups has no rows to find; one without statistics is read every time.
      for (const path of chunkPaths) {
        if (unreadable.has(path)) continue;
        this.#cache.set(path, found.get(path) ?? { min: Infinity, max: -Infinity });
      }
    }
    while (this.#cache.size > MAX_CACHED_RANGES) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
    const out = new Map<string, Range>();
    for (const p of paths) {
      const r = this.#cache.get(p);
      if (r) out.set(p, r);
    }
    return out;
  }
}

/**
 * The kept files as globs where a whole directory remains: one per `dt` when every key of the
 * date is a kept bronze file (no type filter, nothing `mixed` in), else one per `type=` directory
 * whose files all remain (the glob matches bronze file names only); the other files as they are.
 */
function globbed(
  files: BronzeFile[],
  paths: string[],
  kept: boolean[],
  type: string | undefined,
  mixed: ReadonlySet<string>,
  localDir: (prefix: string) => string,
): string[] {
  // dt → type → [kept paths, whether every listed file was kept]
  const dirs = new Map<string, Map<string, { kept: string[]; all: boolean }>>();
  files.forEach((f, i) => {
    const byType = dirs.get(f.dt) ?? new Map<string, { kept: string[]; all: boolean }>();
    dirs.set(f.dt, byType);
    const d = byType.get(f.type) ?? { kept: [], all: true };
    byType.set(f.type, d);
    if (kept[i]) d.kept.push(paths[i]!);
    else d.all = false;
  });
  const out: string[] = [];
  for (const [dt, byType] of dirs) {
    const dtDir = localDir(`${TABLES.bronze}/dt=${dt}`);
    if (!type && !mixed.has(dt) && [...byType.values()].every((d) => d.all)) {
      out.push(join(dtDir, "type=*", BRONZE_GLOB));
      continue;
    }
    for (const [t, d] of byType) {
      if (d.all) out.push(join(dtDir, `type=${t}`, BRONZE_GLOB));
      else out.push(...d.kept);
    }
  }
  return out;
}

/** µs of a Parquet statistics value of a UTC timestamp (`2026-03-10 12:00:00.123456`). */
function statsMicros(v: unknown): number | undefined {
  if (typeof v !== "string" || !/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?$/.test(v)) {
    return undefined;
  }
  const us = isoToMicros(`${v.replace(" ", "T")}Z`);
  return Number.isFinite(us) ? us : undefined;
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
