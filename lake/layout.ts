/**
 * Where every lake table lives, and the only code that knows a table's keys or lists them: names
 * are built and parsed here (dates, known types, bronze file names, alert ids), so keys handed to
 * the store and paths handed to DuckDB are always names the lake made itself, never strings from a
 * request.
 *
 * ```
 * bronze/events/dt=<received date>/type=<type>/<topic>+<partition>+<first>+<last>.parquet
 * silver/<domain>/dt=<occurred date>/data.parquet        one file per partition, replaced whole
 * silver/_rejects/dt=<occurred date>/data.parquet         rows silver could not cast, with reason
 * gold/user_daily_features/dt=<date>/data.parquet
 * gold/daily_type_metrics/dt=<date>/data.parquet
 * alerts/dt=<occurred date>/<alert_id>.parquet
 * _progress/…                                             offsets loaded, job progress, locks
 * ```
 *
 * @module
 */
import { DOMAINS, EVENT_TYPES, OTHER_TYPE, TOPIC_NAME } from "../shared/schemas.ts";
import { addDays, DATE } from "../shared/time.ts";
import type { ObjectInfo, ObjectStore } from "./storage/store.ts";

/** A Kafka topic name (or `wal`), as it may appear in a bronze file name. */
export const TOPIC = TOPIC_NAME;
const BRONZE_NAME = new RegExp(
  `^(${TOPIC_NAME.source.slice(1, -1)})\\+(\\d+)\\+(\\d{20})\\+(\\d{20})\\.parquet$`,
);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ALERT_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.parquet$/;

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

/** The single data file of a `dt` partition of a replace-whole table (silver, gold). */
export function partitionKey(table: string, dt: string): string {
  return `${table}/dt=${checkDate(dt)}/data.parquet`;
}

// ─── Bronze ─────────────────────────────────────────────────────────────────────────────────────

/** The name of a batch's files: sortable, and the same every time the same range is written. */
export function bronzeFileName(
  topic: string,
  partition: number,
  first: number,
  last: number,
): string {
  if (!TOPIC.test(topic)) throw new Error(`Cannot name a bronze file for topic "${topic}"`);
  if (!Number.isSafeInteger(partition) || partition < 0) {
    throw new Error(`Invalid partition ${partition}`);
  }
  const pad = (n: number) => String(n).padStart(20, "0");
  return `${topic}+${partition}+${pad(first)}+${pad(last)}.parquet`;
}

/**
 * The key of a bronze file in one partition. Refuses any value that is not a date or a known
 * type, so no raw client string can become part of a key.
 */
export function bronzeFileKey(dt: string, type: string, name: string): string {
  checkDate(dt);
  if (!PARTITION_TYPES.has(type)) throw new Error(`Invalid partition type "${type}"`);
  if (!BRONZE_NAME.test(name)) throw new Error(`Invalid bronze file name "${name}"`);
  return `${TABLES.bronze}/dt=${dt}/type=${type}/${name}`;
}

/** The bronze writer's progress object of one log partition (`{"next_offset": N, …}`). */
export function bronzeProgressKey(topic: string, partition: number): string {
  checkLogPartition(topic, partition);
  return `_progress/bronze/${topic}+${partition}.json`;
}

/** The key the bronze writers of one log partition lock. */
export function bronzeLockKey(topic: string, partition: number): string {
  checkLogPartition(topic, partition);
  return `_progress/bronze/${topic}+${partition}.lock`;
}

/** One bronze file, with what its key says. */
export interface BronzeFile {
  key: string;
  dt: string;
  type: string;
  topic: string;
  partition: number;
  first: number;
  last: number;
}

/** A bronze key's parts, or undefined for a key the bronze writer does not make. */
function parseBronzeKey(key: string): BronzeFile | undefined {
  const parts = key.slice(TABLES.bronze.length + 1).split("/");
  if (parts.length !== 3) return undefined;
  const [d, t, name] = parts as [string, string, string];
  const dt = d.slice(3), type = t.slice(5);
  if (!d.startsWith("dt=") || !DATE.test(dt) || !t.startsWith("type=")) return undefined;
  if (!PARTITION_TYPES.has(type)) return undefined;
  const m = BRONZE_NAME.exec(name);
  if (!m) return undefined;
  return {
    key,
    dt,
    type,
    topic: m[1]!,
    partition: Number(m[2]),
    first: Number(m[3]),
    last: Number(m[4]),
  };
}

/**
 * Bronze files, pruned by received date and type before anything is opened, sorted by key. Only
 * names the bronze writer produces are returned. With `from`, only the dates of the range are
 * listed (to `to`, or today plus a day).
 */
export async function listBronzeFiles(
  store: ObjectStore,
  filter: {
    from?: string;
    to?: string;
    types?: readonly string[];
    /** Told of every other key found among the bronze files (names the writer never makes). */
    onForeign?: (key: string) => void;
  } = {},
): Promise<BronzeFile[]> {
  const types = filter.types ? new Set(filter.types) : undefined;
  const keep = (f: BronzeFile | undefined): f is BronzeFile =>
    f !== undefined && (!types || types.has(f.type)) &&
    (!filter.from || f.dt >= filter.from) && (!filter.to || f.dt <= filter.to);
  const out: BronzeFile[] = [];
  const prefixes = filter.from
    ? datesBetween(filter.from, filter.to ?? addDays(new Date().toISOString().slice(0, 10), 1))
      .map((dt) => `${TABLES.bronze}/dt=${dt}/`)
    : [`${TABLES.bronze}/`];
  for (const prefix of prefixes) {
    for await (const o of store.list(prefix)) {
      const f = parseBronzeKey(o.key);
      if (keep(f)) out.push(f);
      else if (!f) filter.onForeign?.(o.key);
    }
  }
  return out;
}

/** Every date from `from` to `to`, inclusive. */
function datesBetween(from: string, to: string): string[] {
  const out: string[] = [];
  for (let dt = checkDate(from); dt <= to; dt = addDays(dt, 1)) out.push(dt);
  return out;
}

// ─── Replace-whole tables and alerts ────────────────────────────────────────────────────────────

/** The `dt=` partitions of a table, optionally within `[from, to]` (inclusive dates), sorted. */
export async function listDates(
  store: ObjectStore,
  table: string,
  range: { from?: string; to?: string } = {},
): Promise<string[]> {
  const dates = new Set<string>();
  const prefix = `${table}/dt=`;
  for await (const o of store.list(prefix)) {
    const dt = o.key.slice(prefix.length).split("/")[0]!;
    if (!DATE.test(dt)) continue;
    if ((range.from && dt < range.from) || (range.to && dt > range.to)) continue;
    dates.add(dt);
  }
  return [...dates].sort();
}

/** The key of an existing partition file of a replace-whole table, else `undefined`. */
export async function existingPartition(
  store: ObjectStore,
  table: string,
  dt: string,
): Promise<string | undefined> {
  const key = partitionKey(table, dt);
  return (await store.head(key)) ? key : undefined;
}

/** The key of one alert; refuses anything but a UUID and a date, so no user string is a key. */
export function alertKey(alert: { alert_id: string; occurred_at: string }): string {
  const dt = alert.occurred_at.slice(0, 10);
  if (!UUID.test(alert.alert_id)) throw new Error(`Invalid alert id "${alert.alert_id}"`);
  if (!DATE.test(dt)) throw new Error(`Invalid alert date "${dt}"`);
  return `${TABLES.alerts}/dt=${dt}/${alert.alert_id}.parquet`;
}

/** One alerts-table file, with what a change detector needs. */
export interface AlertFile extends ObjectInfo {
  name: string;
}

/** The files of one `dt=` partition of the alerts table (only `<uuid>.parquet` names), sorted. */
export async function listAlertFiles(store: ObjectStore, dt: string): Promise<AlertFile[]> {
  const prefix = `${TABLES.alerts}/dt=${checkDate(dt)}/`;
  const out: AlertFile[] = [];
  for await (const o of store.list(prefix)) {
    const name = o.key.slice(prefix.length);
    if (ALERT_NAME.test(name)) out.push({ ...o, name });
  }
  return out;
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
