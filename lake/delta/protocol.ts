/**
 * The Delta Lake transaction log as this lake writes it (protocol reader 1 / writer 2): the action
 * types, a table's schema as Delta's `schemaString`, commit files as newline-delimited JSON, and
 * the encoding of `add.path`. See https://github.com/delta-io/delta/blob/master/PROTOCOL.md.
 *
 * ```
 * <table>/_delta_log/00000000000000000000.json           protocol, metaData, the first actions
 * <table>/_delta_log/<version, 20 digits>.json             one commit: put-if-absent, never replaced
 * <table>/_delta_log/<version>.checkpoint.parquet          the whole state at that version
 * <table>/_delta_log/_last_checkpoint                      {"version": N, "size": M}
 * <table>/<col>=<value>/…/<name>.parquet                   data files (hive-style directories)
 * ```
 *
 * @module
 */

/** A data file in the table. */
export interface AddFile {
  /** Relative to the table root, URL-encoded (see {@link encodePath}). */
  path: string;
  partitionValues: Record<string, string | null>;
  size: number;
  modificationTime: number;
  dataChange: boolean;
  /** {@link FileStats} as JSON. */
  stats?: string;
  /** Free-form string tags; this lake keeps {@link FileTags} as JSON under `streamgate`. */
  tags?: Record<string, string>;
}

/** What this lake records of a data file beyond Delta's stats (`add.tags.streamgate`). */
export interface FileTags {
  /** Bronze: the file carries typed payload columns (`extra`, `reject`, the type's fields). */
  typed?: boolean;
  /** Rows per UTC hour of `occurred_at` (`YYYY-MM-DDTHH`): summaries without reading rows. */
  hours?: Record<string, number>;
  /**
   * Silver, small files only: every `user_key` of the file's rows, sorted. A file's `user_key`
   * min/max spans nearly every key even for a few rows; with this list a user's query skips the
   * file without opening it.
   */
  userKeys?: number[];
}

/** The key of this lake's tags in `add.tags`. */
export const TAGS_KEY = "streamgate";

/** The {@link FileTags} of a file, `{}` when it has none (or unreadable ones). */
export function fileTags(add: AddFile): FileTags {
  const text = add.tags?.[TAGS_KEY];
  if (!text) return {};
  try {
    return JSON.parse(text) as FileTags;
  } catch {
    return {};
  }
}

/** A data file logically deleted from the table (the file itself goes at vacuum). */
export interface RemoveFile {
  path: string;
  deletionTimestamp: number;
  dataChange: boolean;
  extendedFileMetadata?: boolean;
  partitionValues?: Record<string, string | null>;
  size?: number;
}

/** The progress of one writer: the last offset of `appId` (a log partition) in the table. */
export interface Txn {
  appId: string;
  version: number;
  lastUpdated?: number;
}

/** A table's metadata. */
export interface Metadata {
  id: string;
  name?: string | null;
  description?: string | null;
  format: { provider: "parquet"; options: Record<string, string> };
  schemaString: string;
  partitionColumns: string[];
  configuration: Record<string, string>;
  createdTime?: number;
}

export interface Protocol {
  minReaderVersion: number;
  minWriterVersion: number;
}

/** One action of a commit. */
export type Action =
  | { add: AddFile }
  | { remove: RemoveFile }
  | { txn: Txn }
  | { metaData: Metadata }
  | { protocol: Protocol }
  | { commitInfo: Record<string, unknown> };

/** What this lake writes: no feature beyond the first reader and the second writer version. */
export const PROTOCOL: Protocol = { minReaderVersion: 1, minWriterVersion: 2 };

/** Column types of a table, in Delta's names. */
export type DeltaType =
  | "string"
  | "long"
  | "integer"
  | "double"
  | "boolean"
  | "timestamp"
  | "date";

/** One column of a table. */
export interface DeltaColumn {
  name: string;
  type: DeltaType;
  nullable: boolean;
}

/** A table's columns (partition columns included) and which of them partition it. */
export interface TableSchema {
  columns: readonly DeltaColumn[];
  partitionColumns: readonly string[];
}

/** The data columns of a schema (what the Parquet files hold; partition values are in the log). */
export function dataColumns(schema: TableSchema): DeltaColumn[] {
  return schema.columns.filter((c) => !schema.partitionColumns.includes(c.name));
}

/** The `schemaString` of a table: a Spark struct type as JSON. */
export function schemaString(schema: TableSchema): string {
  return JSON.stringify({
    type: "struct",
    fields: schema.columns.map((c) => ({
      name: c.name,
      type: c.type,
      nullable: c.nullable,
      metadata: {},
    })),
  });
}

/** Per-file statistics (`add.stats`): what readers use to skip files. */
export interface FileStats {
  numRecords: number;
  minValues: Record<string, string | number>;
  maxValues: Record<string, string | number>;
  nullCount: Record<string, number>;
}

/** The key of commit `version` of a table. */
export function commitKey(table: string, version: number): string {
  return `${table}/_delta_log/${String(version).padStart(20, "0")}.json`;
}

/** The key of the checkpoint at `version`. */
export function checkpointKey(table: string, version: number): string {
  return `${table}/_delta_log/${String(version).padStart(20, "0")}.checkpoint.parquet`;
}

/** The key of `_last_checkpoint`. */
export function lastCheckpointKey(table: string): string {
  return `${table}/_delta_log/_last_checkpoint`;
}

/** A commit file: one action per line. */
export function encodeCommit(actions: readonly Action[]): Uint8Array {
  return new TextEncoder().encode(actions.map((a) => JSON.stringify(a)).join("\n") + "\n");
}

/** The actions of a commit file (blank lines skipped). */
export function decodeCommit(bytes: Uint8Array): Action[] {
  return new TextDecoder().decode(bytes).split("\n").filter((l) => l.trim() !== "").map((l) =>
    JSON.parse(l) as Action
  );
}

/**
 * `add.path` of a file at `relative` (a `/`-separated path below the table root): each segment
 * URL-encoded as Delta requires, keeping the `=` of hive-style directory names readable.
 */
export function encodePath(relative: string): string {
  return relative.split("/").map((s) => encodeURIComponent(s).replaceAll("%3D", "=")).join("/");
}

/** The relative path an `add.path` names. */
export function decodePath(path: string): string {
  return path.split("/").map(decodeURIComponent).join("/");
}

/** `<col>=<value>/…` of a file's partition values, in partition column order. */
export function partitionDir(
  partitionColumns: readonly string[],
  values: Record<string, string | null>,
): string {
  return partitionColumns.map((c) => `${c}=${values[c] ?? "__HIVE_DEFAULT_PARTITION__"}`).join(
    "/",
  );
}
