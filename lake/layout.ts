/**
 * Where every lake table lives, and the only way lake code lists files: directory names are parsed
 * and checked here (dates, known types, bronze file names), so paths handed to DuckDB are always
 * paths the lake made itself, never strings from a request.
 *
 * ```
 * bronze/events/dt=<received date>/type=<type>/<topic>+<partition>+<first>+<last>.parquet
 * silver/<domain>/dt=<occurred date>/data.parquet        one file per partition, replaced whole
 * silver/_rejects/dt=<occurred date>/data.parquet         rows silver could not cast, with reason
 * gold/user_daily_features/dt=<date>/data.parquet
 * gold/daily_type_metrics/dt=<date>/data.parquet
 * alerts/dt=<occurred date>/<alert_id>.parquet
 * _progress/…   _staging/…                               job state and files being written
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { DOMAINS, EVENT_TYPES, OTHER_TYPE } from "../shared/schemas.ts";
import { BRONZE_EVENTS } from "./bronze.ts";
import { DATE } from "../shared/time.ts";

const BRONZE_NAME = /^([A-Za-z0-9._-]{1,249})\+(\d+)\+(\d{20})\+(\d{20})\.parquet$/;

/** The silver domains, one table each. */
export const SILVER_DOMAINS = [...new Set(Object.values(DOMAINS))].sort() as Domain[];
export type Domain = (typeof DOMAINS)[keyof typeof DOMAINS];

/** Table directories relative to the lake root. */
export const TABLES = {
  bronze: BRONZE_EVENTS,
  silver: (domain: Domain) => join("silver", domain),
  silverRejects: join("silver", "_rejects"),
  userDailyFeatures: join("gold", "user_daily_features"),
  dailyTypeMetrics: join("gold", "daily_type_metrics"),
  alerts: "alerts",
} as const;

/** The single data file of a dt partition of a replace-whole table (silver, gold). */
export function partitionFile(lakeDir: string, table: string, dt: string): string {
  if (!DATE.test(dt)) throw new Error(`Invalid partition date "${dt}"`);
  return join(lakeDir, table, `dt=${dt}`, "data.parquet");
}

/** One bronze file, with what its path says. */
export interface BronzeFile {
  path: string;
  dt: string;
  type: string;
  topic: string;
  partition: number;
  first: number;
  last: number;
}

async function dirs(path: string): Promise<string[]> {
  try {
    const out: string[] = [];
    for await (const e of Deno.readDir(path)) if (e.isDirectory) out.push(e.name);
    return out.sort();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

/** The `dt=` partitions of a table, optionally within `[from, to]` (inclusive dates), sorted. */
export async function listDates(
  lakeDir: string,
  table: string,
  range: { from?: string; to?: string } = {},
): Promise<string[]> {
  return (await dirs(join(lakeDir, table)))
    .filter((d) => d.startsWith("dt=") && DATE.test(d.slice(3)))
    .map((d) => d.slice(3))
    .filter((dt) => (!range.from || dt >= range.from) && (!range.to || dt <= range.to));
}

const PARTITION_TYPES = new Set<string>([...EVENT_TYPES, OTHER_TYPE]);

/**
 * Bronze files, pruned by received date and type before anything is opened. Only names the bronze
 * writer produces are returned.
 */
export async function listBronzeFiles(
  lakeDir: string,
  filter: { from?: string; to?: string; types?: readonly string[] } = {},
): Promise<BronzeFile[]> {
  const out: BronzeFile[] = [];
  const types = filter.types ? new Set(filter.types) : undefined;
  for (const dt of await listDates(lakeDir, TABLES.bronze, filter)) {
    const dtDir = join(lakeDir, TABLES.bronze, `dt=${dt}`);
    for (const d of await dirs(dtDir)) {
      const type = d.slice(5);
      if (!d.startsWith("type=") || !PARTITION_TYPES.has(type)) continue;
      if (types && !types.has(type)) continue;
      for await (const f of Deno.readDir(join(dtDir, d))) {
        const m = f.isFile ? BRONZE_NAME.exec(f.name) : null;
        if (!m) continue;
        out.push({
          path: join(dtDir, d, f.name),
          dt,
          type,
          topic: m[1]!,
          partition: Number(m[2]),
          first: Number(m[3]),
          last: Number(m[4]),
        });
      }
    }
  }
  return out.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

/**
 * A DuckDB list literal of file paths for `read_parquet([...])`. DuckDB cannot bind a file list as
 * a parameter, so paths are quoted here; only call it with paths from this module's listings.
 */
export function sqlFileList(paths: readonly string[]): string {
  if (paths.length === 0) throw new Error("sqlFileList needs at least one file");
  return `[${paths.map((p) => `'${p.replaceAll("'", "''")}'`).join(", ")}]`;
}

/**
 * A DuckDB string literal of one file path (`COPY … TO '…'`, `read_parquet('…')`). Same rule as
 * {@link sqlFileList}: only for paths this module built or listed.
 */
export function sqlPath(path: string): string {
  return `'${path.replaceAll("'", "''")}'`;
}

/** The partition file of a replace-whole table when it exists, else `undefined`. */
export async function existingPartitionFile(
  lakeDir: string,
  table: string,
  dt: string,
): Promise<string | undefined> {
  const path = partitionFile(lakeDir, table, dt);
  try {
    return (await Deno.stat(path)).isFile ? path : undefined;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

const ALERT_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.parquet$/;

/** One alerts-table file, with what a change detector needs. */
export interface AlertFile {
  path: string;
  name: string;
  size: number;
  mtimeMs: number;
}

/** The files of one `dt=` partition of the alerts table (only `<uuid>.parquet` names), sorted. */
export async function listAlertFiles(lakeDir: string, dt: string): Promise<AlertFile[]> {
  if (!DATE.test(dt)) throw new Error(`Invalid partition date "${dt}"`);
  const dir = join(lakeDir, TABLES.alerts, `dt=${dt}`);
  const out: AlertFile[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || !ALERT_NAME.test(e.name)) continue;
      const path = join(dir, e.name);
      try {
        const st = await Deno.stat(path);
        out.push({ path, name: e.name, size: st.size, mtimeMs: st.mtime?.getTime() ?? 0 });
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return out.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;

/** The bronze writer's progress file of one log partition (`{"next_offset": N, …}`). */
export function bronzeProgressFile(lakeDir: string, topic: string, partition: number): string {
  if (!TOPIC.test(topic) || !Number.isSafeInteger(partition) || partition < 0) {
    throw new Error(`Invalid log partition ${topic}+${partition}`);
  }
  return join(lakeDir, "_progress", "bronze", `${topic}+${partition}.json`);
}

/** Directory of the lake's own state (offsets loaded, job progress, locks); never a table. */
export const PROGRESS_DIR = "_progress";

/** Job state files: `_progress/silver.json`, `_progress/gold.json`, `_progress/jobs.lock`. */
export const JOB_FILES = {
  silverProgress: join("_progress", "silver.json"),
  goldProgress: join("_progress", "gold.json"),
  lock: join("_progress", "jobs.lock"),
} as const;

/** Where a job stages files before renaming them into place (same filesystem as the tables). */
export function jobStagingDir(lakeDir: string, job: "silver" | "gold"): string {
  return join(lakeDir, "_staging", job);
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
