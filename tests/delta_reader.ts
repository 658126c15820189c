/**
 * An independent check of the lake's Delta tables: Delta's own Java library (delta-standalone,
 * through `scripts/delta_reader.sh`) reads a table and reports what any Delta reader would see.
 * It shares no code with the product's writer, so a table it reads right is a Delta table, not
 * only a table our own reader agrees with.
 *
 * ```ts
 * const table = await readDeltaTable(`${lakeDir}/bronze/events`, {
 *   txn: ["streamgate-bronze"],
 *   columns: ["log_topic", "log_partition", "log_offset"],
 * });
 * assert.equal(table.rows, 200);
 * ```
 *
 * The first call builds the reader (Maven, once per checkout; minutes on a cold Maven cache), so
 * give the first test that reads a table a generous timeout. Each read starts a JVM (~2 s).
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** The script that builds and runs the Java reader. */
export const DELTA_READER_SCRIPT = fileURLToPath(
  new URL("../scripts/delta_reader.sh", import.meta.url),
);

/** A JSON value of one cell in {@link DeltaSnapshot.values}. */
export type DeltaValue =
  | string
  | number
  | boolean
  | null
  | DeltaValue[]
  | { [key: string]: DeltaValue };

/** One column of the table's schema, as Delta names its type ("string", "bigint", "timestamp"). */
export interface DeltaField {
  name: string;
  type: string;
  nullable: boolean;
}

/** One live data file of the snapshot (an `add` action that no later `remove` cancelled). */
export interface DeltaFile {
  /** Path relative to the table (or absolute URI), URL-decoded: the real file or object name. */
  path: string;
  /** `add.path` as the log stores it (URL-encoded). */
  rawPath: string;
  /** Partition values of the file, unescaped, in partition column order; null for a null value. */
  partitionValues: Record<string, string | null>;
  /** `add.size`. */
  size: number;
  /** The file's real length in storage; differs from `size` only in a broken table. */
  actualSize: number;
  /** `numRecords` of `add.stats`; null when the file has no stats. */
  numRecords: number | null;
}

/** What Delta's reader saw in a table at its latest version. */
export interface DeltaSnapshot {
  /** The URI the reader was given. */
  table: string;
  version: number;
  /** The table's protocol; null where delta-standalone does not expose it. */
  protocol: { minReaderVersion: number; minWriterVersion: number } | null;
  tableId: string;
  /** `metaData.configuration` (table properties). */
  configuration: Record<string, string>;
  partitionColumns: string[];
  schema: DeltaField[];
  numFiles: number;
  /** Sorted by `rawPath`. */
  files: DeltaFile[];
  /** Rows read through the data files (`snapshot.open()`), not taken from stats. */
  rows: number;
  /**
   * Rows per partition, keyed "dt=2026-01-01/type=login" with the unescaped values in partition
   * column order ("col=__HIVE_DEFAULT_PARTITION__" for null); "" for an unpartitioned table.
   */
  rowsByPartition: Record<string, number>;
  /** Version of each app id asked for with `txn` (-1: Delta knows no transaction of that app). */
  txn?: Record<string, number>;
  /** The `columns` asked for, in that order. */
  columns?: string[];
  /**
   * One array per row with the values of `columns`: longs as numbers, decimals as strings,
   * timestamps as ISO-8601 UTC strings, dates as "yyyy-mm-dd", binary as base64.
   */
  values?: DeltaValue[][];
  /** Where the reader had to step in for delta-standalone (e.g. INT64 timestamps). */
  notes: string[];
}

/** Options of {@link readDeltaTable}. */
export interface ReadDeltaTableOptions {
  /** App ids whose `txn` versions to report. @default [] */
  txn?: string[];
  /** Columns whose values to return in `values`. @default [] (no values) */
  columns?: string[];
  /** Extra Hadoop settings, e.g. `{ "fs.s3a.connection.timeout": "5000" }`. @default {} */
  hadoopConf?: Record<string, string>;
  /**
   * Environment for the reader, on top of this process's: AWS_ENDPOINT_URL_S3 (or
   * AWS_ENDPOINT_URL), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION for s3a:// tables.
   * @default {}
   */
  env?: Record<string, string>;
  /** Aborts the read (the JVM is killed). */
  signal?: AbortSignal;
}

/**
 * Reads the Delta table at `uri` (a local directory, `file:///…`, `s3a://bucket/prefix/table` or
 * the same as `s3://…`)
 * with Delta's Java library and returns what it saw. Rejects with the reader's error (the Java
 * exception) when the table cannot be read.
 */
export async function readDeltaTable(
  uri: string,
  options: ReadDeltaTableOptions = {},
): Promise<DeltaSnapshot> {
  return (await readDeltaTables([uri], options))[0]!;
}

/**
 * Reads several Delta tables with one start of the Java reader (a JVM start is most of a read's
 * time), with the same options for each; resolves with their snapshots in `uris` order. Rejects
 * when one of them cannot be read.
 */
export async function readDeltaTables(
  uris: string[],
  options: ReadDeltaTableOptions = {},
): Promise<DeltaSnapshot[]> {
  if (uris.length === 0) return [];
  const args = ["read", ...uris];
  for (const appId of options.txn ?? []) args.push("--txn", appId);
  if (options.columns?.length) {
    const bad = options.columns.find((c) => c.includes(",") || c.trim() === "");
    if (bad !== undefined) throw new Error(`Cannot ask the Delta reader for column "${bad}"`);
    args.push("--columns", options.columns.join(","));
  }
  for (const [key, value] of Object.entries(options.hadoopConf ?? {})) {
    args.push("--conf", `${key}=${value}`);
  }
  const what = uris.length === 1 ? `Delta table "${uris[0]}"` : `${uris.length} Delta tables`;
  const stdout = await runDeltaReader(args, {
    env: options.env ?? {},
    action: `reading ${what}`,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  let parsed: DeltaSnapshot | DeltaSnapshot[];
  try {
    parsed = JSON.parse(stdout);
  } catch (err) {
    throw new Error(`Cannot parse the Delta reader's output for ${what}: ${stdout.slice(0, 200)}`, {
      cause: err,
    });
  }
  return Array.isArray(parsed) ? parsed : [parsed];
}

/** Options of {@link runDeltaReader}. */
export interface RunDeltaReaderOptions {
  /** Environment on top of this process's. @default {} */
  env?: Record<string, string>;
  /** What the run does, for the error message. @default "running scripts/delta_reader.sh" */
  action?: string;
  signal?: AbortSignal;
}

/**
 * Runs `scripts/delta_reader.sh` with `args` and returns its stdout; rejects with its stderr
 * when it exits non-zero.
 */
export async function runDeltaReader(
  args: string[],
  options: RunDeltaReaderOptions = {},
): Promise<string> {
  const command = new Deno.Command("bash", {
    args: [DELTA_READER_SCRIPT, ...args],
    env: options.env ?? {},
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const { code, stdout, stderr } = await command.output();
  const out = new TextDecoder().decode(stdout);
  if (code !== 0) {
    const err = new TextDecoder().decode(stderr).trim();
    const action = options.action ?? "running scripts/delta_reader.sh";
    throw new Error(`Failed ${action} (exit ${code}): ${err || "no message"}`);
  }
  return out;
}
