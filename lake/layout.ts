/**
 * Where every lake table lives, and the only code that knows a table's keys and file names: names
 * are built and parsed here (dates, known types, bronze offset ranges, alert ids), so keys handed
 * to the store and paths handed to DuckDB are always names the lake made itself, never strings
 * from a request. Every table is a Delta table (`lake/delta/`): what is in it is what its log
 * says, never what a directory listing finds.
 *
 * ```
 * bronze/events/dt=<received date>/type=<type>/<topic>+<partition>+<first>+<last>-<id>.parquet
 * silver/<domain>/dt=<occurred date>/part-<id>.parquet     auth, commerce, usage, media, sales
 * silver/_rejects/dt=<occurred date>/part-<id>.parquet      rows silver could not cast, with reason
 * gold/user_daily_features/dt=<date>/part-<id>.parquet
 * gold/daily_type_metrics/dt=<date>/part-<id>.parquet
 * alerts/dt=<occurred date>/<alert_id>-<id>.parquet
 * <table>/_delta_log/…                                      each table's Delta log
 * _progress/silver.json, _progress/gold.json                 the jobs' own progress
 * ```
 *
 * @module
 */
import { DOMAINS, EVENT_TYPES, OTHER_TYPE, TOPIC_NAME } from "../shared/schemas.ts";
import { DATE } from "../shared/time.ts";
import type { ObjectStore } from "./storage/store.ts";

/** A Kafka topic name (or `wal`), as it may appear in a bronze file name. */
export const TOPIC = TOPIC_NAME;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The silver domains, one table each. */
export const SILVER_DOMAINS = [...new Set(Object.values(DOMAINS))].sort() as Domain[];
export type Domain = (typeof DOMAINS)[keyof typeof DOMAINS];

/** The types a bronze `type=` partition may have. */
export const PARTITION_TYPES: ReadonlySet<string> = new Set<string>([...EVENT_TYPES, OTHER_TYPE]);

/** Table prefixes (keys relative to the lake root). */
export const TABLES = {
  bronze: "bronze/events",
  silver: (domain: Domain) => `silver/${domain}`,
  silverRejects: "silver/_rejects",
  userDailyFeatures: "gold/user_daily_features",
  dailyTypeMetrics: "gold/daily_type_metrics",
  alerts: "alerts",
} as const;

/** Job state: `_progress/silver.json`, `_progress/gold.json`, `_progress/jobs.lock`. */
export const JOB_KEYS = {
  silverProgress: "_progress/silver.json",
  goldProgress: "_progress/gold.json",
  lock: "_progress/jobs.lock",
} as const;

function checkDate(dt: string): string {
  if (!DATE.test(dt)) throw new Error(`Invalid partition date "${dt}"`);
  return dt;
}

function checkLogPartition(topic: string, partition: number): void {
  if (!TOPIC.test(topic)) throw new Error(`Invalid log topic "${topic}"`);
  if (!Number.isSafeInteger(partition) || partition < 0) {
    throw new Error(`Invalid log partition ${topic}+${partition}`);
  }
}

/** A data file's name suffix: unique, so no file is ever written twice under one name. */
function fileId(): string {
  return crypto.randomUUID().slice(0, 8);
}

/** The path (below its table) of a new data file of a `dt`-partitioned table (silver, gold). */
export function partitionFile(dt: string): string {
  return `dt=${checkDate(dt)}/part-${crypto.randomUUID()}.parquet`;
}

// ─── Silver ─────────────────────────────────────────────────────────────────────────────────────

/**
 * `user_key` of a silver row: FNV-1a (32 bits, over the UTF-16 code units of `user_id`) as a signed
 * INTEGER. Silver files are sorted by it, so a reader looking for one user skips every row group
 * whose `user_key` min/max excludes it: integer statistics are exact, where DuckDB keeps only an
 * 8-byte prefix of string ones (ids sharing a prefix would match every row group). Queries filter
 * on `user_key = <number>` as well as `user_id = ?`: the number is computed here, never taken from
 * a request, and a bound parameter would not reach the Parquet scan's statistics.
 */
export function userKey(userId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    h ^= userId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

// ─── Bronze ─────────────────────────────────────────────────────────────────────────────────────

const BRONZE_NAME = new RegExp(
  `^(${TOPIC_NAME.source.slice(1, -1)})\\+(\\d+)\\+(\\d{20})\\+(\\d{20})-[0-9a-f]{8}\\.parquet$`,
);

/**
 * The path (below the bronze table) of a new file of one batch: its partition directory, then the
 * log partition and offset range it holds. Refuses any value that is not a date, a known type or
 * a topic name, so no raw client string can become part of a key.
 */
export function bronzeFile(
  dt: string,
  type: string,
  batch: { topic: string; partition: number; first: number; last: number },
): string {
  checkDate(dt);
  if (!PARTITION_TYPES.has(type)) throw new Error(`Invalid partition type "${type}"`);
  checkLogPartition(batch.topic, batch.partition);
  const pad = (n: number) => String(n).padStart(20, "0");
  return `dt=${dt}/type=${type}/${batch.topic}+${batch.partition}+${pad(batch.first)}+${
    pad(batch.last)
  }-${fileId()}.parquet`;
}

/** One bronze file, with what its name says. */
export interface BronzeFile {
  /** Relative to the bronze table (decoded `add.path`). */
  path: string;
  dt: string;
  type: string;
  topic: string;
  partition: number;
  first: number;
  last: number;
}

/** A bronze file's parts, or undefined for a path the bronze writer does not make. */
export function parseBronzeFile(path: string): BronzeFile | undefined {
  const parts = path.split("/");
  if (parts.length !== 3) return undefined;
  const [d, t, name] = parts as [string, string, string];
  const dt = d.slice(3), type = t.slice(5);
  if (!d.startsWith("dt=") || !DATE.test(dt) || !t.startsWith("type=")) return undefined;
  if (!PARTITION_TYPES.has(type)) return undefined;
  const m = BRONZE_NAME.exec(name);
  if (!m) return undefined;
  return {
    path,
    dt,
    type,
    topic: m[1]!,
    partition: Number(m[2]),
    first: Number(m[3]),
    last: Number(m[4]),
  };
}

/** The `txn` app id of a log partition's bronze writer. */
export function bronzeAppId(topic: string, partition: number): string {
  checkLogPartition(topic, partition);
  return `${topic}+${partition}`;
}

// ─── Alerts ─────────────────────────────────────────────────────────────────────────────────────

/** The path (below the alerts table) of a new file of one alert; refuses anything but a UUID. */
export function alertFile(alert: { alert_id: string; occurred_at: string }): string {
  const dt = alert.occurred_at.slice(0, 10);
  if (!UUID.test(alert.alert_id)) throw new Error(`Invalid alert id "${alert.alert_id}"`);
  if (!DATE.test(dt)) throw new Error(`Invalid alert date "${dt}"`);
  return `dt=${dt}/${alert.alert_id}-${fileId()}.parquet`;
}

/** The alert id an alerts-table file holds, or undefined for another name. */
export function alertIdOf(path: string): string | undefined {
  const m = /\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-[0-9a-f]{8}\.parquet$/
    .exec(path);
  return m?.[1];
}

// ─── SQL over lake files ────────────────────────────────────────────────────────────────────────

/**
 * A DuckDB list literal of file paths for `read_parquet([...])`. DuckDB cannot bind a file list as
 * a parameter, so paths are quoted here; only call it with the store's local files of keys from
 * this module.
 */
export function sqlFileList(paths: readonly string[]): string {
  if (paths.length === 0) throw new Error("sqlFileList needs at least one file");
  return `[${paths.map(sqlPath).join(", ")}]`;
}

/** A DuckDB string literal of one file path; same rule as {@link sqlFileList}. */
export function sqlPath(path: string): string {
  return `'${path.replaceAll("'", "''")}'`;
}

/**
 * `read_parquet([...])` over lake files (see {@link sqlFileList}): columns matched by name, so
 * files written before a column was added still read (as NULL), and no hive columns taken from
 * the path (duckdb 0.9 adds `dt` on its own when a path has `dt=`).
 */
export function sqlReadParquet(paths: readonly string[]): string {
  return `read_parquet(${sqlFileList(paths)}, union_by_name = true, hive_partitioning = false)`;
}

/**
 * Most files one `read_parquet` takes. duckdb-wasm 1.28 crashes ("memory access out of bounds")
 * when one scan opens somewhere between 600 and 1000 files; readers split longer lists.
 */
export const MAX_FILES_PER_READ = 200;

/** Splits a list into chunks of at most `size` items. */
export function chunked<T>(items: readonly T[], size = MAX_FILES_PER_READ): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The local files of `keys`, in order (see {@link ObjectStore.localFile}). */
export function localFiles(store: ObjectStore, keys: readonly string[]): Promise<string[]> {
  return Promise.all(keys.map((k) => store.localFile(k)));
}

/** Reads a small JSON object of the lake's own state, or `undefined` when there is none. */
export async function readJson<T>(store: ObjectStore, key: string): Promise<T | undefined> {
  const bytes = await store.get(key);
  return bytes ? JSON.parse(new TextDecoder().decode(bytes)) as T : undefined;
}

/** Replaces a small JSON object of the lake's own state. */
export function writeJson(store: ObjectStore, key: string, value: unknown): Promise<void> {
  return store.put(key, new TextEncoder().encode(JSON.stringify(value)));
}
