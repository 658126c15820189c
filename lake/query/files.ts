/**
 * Which bronze files a query reads, as DuckDB list literals that fit its statements. Files come
 * from a snapshot of the bronze table's Delta log (committed files only, never a listing):
 * - pruned by `dt` (the received date) and `type` first. `received_at` is at most `maxPastDays`
 *   after `occurred_at` and at most `maxFutureSeconds` before it (the gateway's validation
 *   bounds), so events that occurred in `[from, to)` live in
 *   `dt ∈ [date(from − maxFutureSeconds), date(to + maxPastDays)]`;
 * - then by the `occurred_at` min/max each file's `add.stats` records (no footer is opened).
 *
 * DuckDB-wasm passes the SQL text (and each string parameter) on its 64 KiB C stack: a statement
 * of more than ~60 KB fails with "memory access out of bounds" and leaves the instance broken, and
 * a list of ~500 bronze paths is already that long. Longer lists are split into several statements
 * whose results are merged by the caller.
 *
 * @module
 */
import type { Lake } from "../lake.ts";
import { localFiles } from "../layout.ts";
import { MAX_US, MIN_US } from "./params.ts";

/** Longest file list literal in one statement, in bytes (DuckDB-wasm's stack is 64 KiB). */
export const LIST_BUDGET = 12_000;

/** The bronze files of queries. */
export class BronzeFiles {
  readonly #lake: Lake;

  constructor(lake: Lake) {
    this.#lake = lake;
  }

  /**
   * Local paths of the bronze files that may hold events that occurred in `[fromUs, toUs)` (no
   * upper bound when `toUs` is undefined), given the gateway's bounds on reception delay (µs).
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
    const table = this.#lake.bronze;
    const snapshot = await table.snapshot();
    const keys: string[] = [];
    for (
      const f of snapshot.filesWhere((v) =>
        !!v.dt && v.dt >= from && (!to || v.dt <= to) && (!type || v.type === type)
      )
    ) {
      const s = snapshot.stats(f.path);
      const lo = s?.minValues.occurred_at, hi = s?.maxValues.occurred_at;
      if (typeof lo === "string" && typeof hi === "string") {
        if (Date.parse(hi) * 1000 < fromUs) continue;
        if (toUs !== undefined && Date.parse(lo) * 1000 >= toUs) continue;
      }
      keys.push(table.keyOf(f.path));
    }
    return await localFiles(this.#lake.store, keys);
  }
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
