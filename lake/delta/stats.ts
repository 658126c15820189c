/**
 * `add.stats` of a data file from its Parquet footer (per row group min, max and null count, as
 * DuckDB renders them), in the form Delta readers use to skip files: numbers as JSON numbers,
 * timestamps as ISO-8601 UTC strings (milliseconds: a minimum is rounded down and a maximum up, so
 * the range always covers the file), strings only when both ends fit Delta's 32-character prefix.
 *
 * @module
 */
import type { RowGroupStat } from "../engine/protocol.ts";
import type { DeltaColumn, FileStats } from "./protocol.ts";

/** Longest string statistic written, as Delta's `dataSkippingStringPrefixLength`. */
const STRING_PREFIX = 32;

/** µs since the epoch of DuckDB's `2026-03-10 12:00:00.123456` (UTC), or undefined. */
export function statsMicros(v: string): number | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(?:\+00(?::?00)?)?$/.exec(v);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}T${m[2]}Z`);
  if (!Number.isFinite(ms)) return undefined;
  return ms * 1000 + Number((m[3] ?? "").padEnd(6, "0").slice(0, 6));
}

function isoMs(ms: number): string {
  return new Date(ms).toISOString();
}

type Bound = { min: number | string; max: number | string };

function bound(column: DeltaColumn, lo: string, hi: string): Bound | undefined {
  switch (column.type) {
    case "long":
    case "integer":
    case "double": {
      const min = Number(lo), max = Number(hi);
      return Number.isFinite(min) && Number.isFinite(max) ? { min, max } : undefined;
    }
    case "timestamp": {
      const min = statsMicros(lo), max = statsMicros(hi);
      if (min === undefined || max === undefined) return undefined;
      return { min: isoMs(Math.floor(min / 1000)), max: isoMs(Math.ceil(max / 1000)) };
    }
    case "string":
      return lo.length <= STRING_PREFIX && hi.length <= STRING_PREFIX
        ? { min: lo, max: hi }
        : undefined;
    case "date":
    case "boolean":
      return undefined;
  }
}

const less = (a: number | string, b: number | string) => a < b;

/**
 * The file's stats: `rows` records, and min/max/null counts of `columns` (the data columns of the
 * file; a column with no usable statistic in some row group gets no min/max).
 */
export function fileStats(
  rows: number,
  groups: readonly RowGroupStat[],
  columns: readonly DeltaColumn[],
): FileStats {
  const stats: FileStats = { numRecords: rows, minValues: {}, maxValues: {}, nullCount: {} };
  for (const column of columns) {
    const mine = groups.filter((g) => g.column === column.name);
    if (mine.length === 0) continue;
    let nulls = 0, lo: number | string | undefined, hi: number | string | undefined;
    let ranged = true;
    for (const g of mine) {
      nulls += g.nulls ?? 0;
      if (g.min === null || g.max === null) {
        // A row group of nulls only has no range; any other gap makes the range unknown.
        if (g.nulls === null) ranged = false;
        continue;
      }
      const b = bound(column, g.min, g.max);
      if (!b) {
        ranged = false;
        continue;
      }
      if (lo === undefined || less(b.min, lo)) lo = b.min;
      if (hi === undefined || less(hi, b.max)) hi = b.max;
    }
    if (mine.every((g) => g.nulls !== null)) stats.nullCount[column.name] = nulls;
    if (ranged && lo !== undefined && hi !== undefined) {
      stats.minValues[column.name] = lo;
      stats.maxValues[column.name] = hi;
    }
  }
  return stats;
}
