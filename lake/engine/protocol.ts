/**
 * Messages between the main thread ({@link ../lake/engine.ts}) and the DuckDB worker. Plain data
 * only: columns travel as arrays, and Arrow is built inside the worker.
 *
 * @module
 */
import type { CastSpec } from "../silver/cast.ts";

/** One column of a table to write. */
export type Column =
  | { kind: "utf8"; values: (string | null)[] }
  | { kind: "timestamp_us"; values: Float64Array }
  | { kind: "int64"; values: Float64Array }
  | { kind: "int32"; values: Int32Array }
  | { kind: "float64"; values: Float64Array }
  | { kind: "float64_nullable"; values: (number | null)[] }
  | { kind: "int32_nullable"; values: (number | null)[] }
  | { kind: "int64_nullable"; values: (number | null)[] }
  | { kind: "bool"; values: boolean[] };

/**
 * A query result as columns: numbers as `Float64Array` (BIGINT included, converted to double, so
 * keep them below 2^53) or `Int32Array`, everything else as an array with `null`s. Columns with
 * nulls are always plain arrays.
 */
export interface ColumnarResult {
  rows: number;
  columns: Record<string, Float64Array | Int32Array | unknown[]>;
}

/** One column's statistics in one row group of a Parquet file, as DuckDB renders them. */
export interface RowGroupStat {
  column: string;
  min: string | null;
  max: string | null;
  nulls: number | null;
}

/** A Parquet file made in memory: its bytes, rows and footer statistics. */
export interface ParquetOut {
  rows: number;
  bytes: Uint8Array;
  stats: RowGroupStat[];
}

export type EngineRequest =
  /** Columns → a table `name` of the worker's database (replacing one of that name). */
  | { id: number; op: "load"; name: string; columns: Record<string, Column> }
  /** Columns → one Parquet file (ZSTD) as {@link ParquetOut}, never written by the worker. */
  | { id: number; op: "toParquet"; columns: Record<string, Column> }
  /**
   * `COPY (<sql>) TO <buffer> (FORMAT PARQUET, <options>)` → {@link ParquetOut}: a job's output
   * file, for the main thread to put in the lake's store.
   */
  | { id: number; op: "copyParquet"; sql: string; options: string }
  | { id: number; op: "query"; sql: string; params: (string | number | boolean | null)[] }
  | {
    id: number;
    op: "queryColumns";
    sql: string;
    params: (string | number | boolean | null)[];
  }
  /**
   * One or more statements separated by `;`, without parameters (COPY, CREATE TEMP TABLE, …).
   * Answers with the rows of the last statement.
   */
  | { id: number; op: "exec"; sql: string }
  /**
   * Silver's cast, run next to the data: `sql` yields `rid`, `type` (the bronze partition),
   * `event_type` and `payload`; each payload is parsed and cast (`silver_cast.ts`) into new tables
   * `<prefix>_<domain>` (`rid`, the domain's fields, `extra`) and `<prefix>__rejects` (`rid`,
   * `reason`), replacing older ones. Answers the row count of each table created (empty ones are
   * not created).
   */
  | { id: number; op: "castJson"; sql: string; spec: CastSpec; prefix: string }
  /**
   * Sent once, first, never answered: lower the worker thread's CPU priority to Linux nice
   * `niceness` (that thread only: Linux keeps a nice value per thread), bound DuckDB's buffer
   * memory to `memoryLimitMb`, and whether replies carry `memory` (for an engine that recycles
   * by memory).
   */
  | {
    id: number;
    op: "configure";
    niceness: number;
    memoryLimitMb: number;
    reportMemory: boolean;
  };

/**
 * `memory`: the worker's memory after the call, in bytes: DuckDB's WebAssembly memory (it never
 * shrinks) plus the worker's JavaScript heap; only when `configure` asked for it.
 */
export type EngineResponse =
  | { id: number; ok: true; value: unknown; memory?: number }
  /** `fatal`: DuckDB crashed (a WebAssembly trap); the worker must be replaced. */
  | { id: number; ok: false; error: string; fatal?: boolean; memory?: number };
