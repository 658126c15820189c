/**
 * Messages between the main thread ({@link ../lake/engine.ts}) and the DuckDB worker. Plain data
 * only: columns travel as arrays, and Arrow is built inside the worker.
 *
 * @module
 */

/** One column of a table to write. */
export type Column =
  | { kind: "utf8"; values: (string | null)[] }
  | { kind: "timestamp_us"; values: Float64Array }
  | { kind: "int64"; values: Float64Array }
  | { kind: "int32"; values: Int32Array }
  | { kind: "float64"; values: Float64Array }
  | { kind: "float64_nullable"; values: (number | null)[] };

export type EngineRequest =
  | {
    id: number;
    op: "writeParquet";
    columns: Record<string, Column>;
    /** The Parquet file to create. */
    path: string;
  }
  | { id: number; op: "query"; sql: string; params: (string | number | boolean | null)[] };

export type EngineResponse =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: string };
