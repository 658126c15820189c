/**
 * The silver layer: bronze events cast into one typed table per domain, deduplicated by `event_id`,
 * partitioned by the UTC date of `occurred_at`, one compacted file per partition.
 *
 * ```
 * silver/<domain>/dt=<occurred date>/data.parquet     auth, commerce, usage, media, sales
 * silver/_rejects/dt=<occurred date>/data.parquet     rows that could not be cast, with `reason`
 * _progress/silver.json                               watermarks per log partition, dates changed
 * ```
 *
 * A run:
 * 1. Lists bronze and keeps the committed batches only: per log partition, files whose `last`
 *    offset is below bronze's `next_offset` and whose `first` offset is at or above silver's own
 *    watermark. Whole batches (every file of one offset range) are taken in offset order, round
 *    robin over log partitions, until the run's budget (rows, files) is spent; the rest waits for
 *    the next run (`more: true`).
 * 2. Reads them in steps of ~50k rows into a temporary table, and casts them inside the DuckDB
 *    worker (`castJson`, `cast.ts`): duckdb-wasm 1.28 has no JSON functions, and parsing next to
 *    the data keeps a million payloads off the main thread. The fields of the event's own type
 *    become the domain's typed columns; other payload fields go to `extra` as JSON. Rows are
 *    staged as Parquet per (table, occurred date) in a local scratch directory, never the lake.
 * 3. An `event_id` staged under two partitions in this run (two dates or two domains) keeps only
 *    its winning copy. Then, per affected partition, DuckDB reads the current file and the staged
 *    rows, keeps one row per `event_id` (earliest `received_at`, then lowest log position) and
 *    writes one file sorted by `occurred_at`. One commit per table then removes each partition's
 *    old files and adds the new ones (`delta/replace.ts`): readers see the old or the new
 *    partitions, never a mix.
 * 4. Last, the progress object is replaced. A crash before that replays the same bronze batches
 *    on the next run, and deduplication makes the replay harmless.
 *
 * Not covered: an `event_id` that silver already holds under one date or domain and that comes
 * again in a later run under another one (a client re-using an id with a different `occurred_at`
 * or type) is kept in both partitions. Retries of the same event always land in the same one.
 *
 * Callers hold the jobs lock (see `jobs.ts`): one silver or gold run at a time per lake; a run that
 * loses a race anyway fails its commit and changes nothing.
 *
 * @module
 */
import { join } from "node:path";
import { removeIfExists } from "../../shared/fs.ts";
import { DATE } from "../../shared/time.ts";
import type { LakeEngine, ParquetOut } from "../engine/engine.ts";
import { countRows, createTempFrom, parquetColumns } from "../engine/sql.ts";
import {
  type Domain,
  JOB_KEYS,
  localFiles,
  MAX_FILES_PER_READ,
  SILVER_DOMAINS,
  sqlFileList,
  sqlPath,
  sqlReadParquet,
  writeJson,
} from "../layout.ts";
import type { Lake } from "../lake.ts";
import { PartitionReplacement } from "../delta/replace.ts";
import type { ObjectStore } from "../storage/store.ts";
import { type Batch, pendingBatches, readGroups, readSilverProgress, takeBudget } from "./plan.ts";
import type { SilverProgress } from "./plan.ts";
import {
  CAST_SPEC,
  COMMON_COLUMNS,
  DOMAIN_OF_TYPE,
  REJECT_COLUMNS,
  SILVER_SPECS,
  type SilverColumn,
} from "./spec.ts";

/** Options of {@link runSilver}. */
export interface SilverOptions {
  /** Most bronze rows one run reads (estimated from offset ranges). @default 2000000 */
  maxRowsPerRun?: number;
  /** Most bronze files one run reads. @default 8000 */
  maxFilesPerRun?: number;
  /** Bronze rows per read-and-cast step (bounds the worker's memory). @default 50000 */
  readRows?: number;
  /** Most files one DuckDB scan opens (see `MAX_FILES_PER_READ`). @default 200 */
  maxFilesPerRead?: number;
  /** Where a run stages its files (a local directory). @default the system's temporary directory */
  scratchDir?: string;
  /** Test hook: runs after the partitions are replaced and before progress is written. */
  beforeProgress?: () => void | Promise<void>;
}

/** What a silver run did. */
export interface SilverStats {
  /** Bronze files and batches (offset ranges) read. */
  files_read: number;
  batches_read: number;
  rows_in: number;
  /** Per domain: rows the table gained (new distinct events). */
  rows_new: Record<Domain, number>;
  /** Per domain: rows in the partition files rewritten. */
  rows_written: Record<Domain, number>;
  rejects_new: number;
  /** Rows read that were already in silver or duplicated another row (by `event_id`). */
  duplicates: number;
  partitions_rewritten: number;
  /** Occurred dates whose domain partitions were rewritten. */
  dates: string[];
  /** Committed bronze left for the next run (the run's budget was reached). */
  more: boolean;
  duration_ms: number;
}

const emptyDomains = () =>
  Object.fromEntries(SILVER_DOMAINS.map((d) => [d, 0])) as Record<Domain, number>;

type Settings = Required<Pick<SilverOptions, "readRows" | "maxFilesPerRead">>;

/** Runs silver once. See the module documentation. */
export async function runSilver(
  engine: LakeEngine,
  lake: Lake,
  options: SilverOptions = {},
): Promise<SilverStats> {
  const store = lake.store;
  const started = performance.now();
  const settings: Settings = {
    readRows: options.readRows ?? 50_000,
    maxFilesPerRead: options.maxFilesPerRead ?? MAX_FILES_PER_READ,
  };
  const stats: SilverStats = {
    files_read: 0,
    batches_read: 0,
    rows_in: 0,
    rows_new: emptyDomains(),
    rows_written: emptyDomains(),
    rejects_new: 0,
    duplicates: 0,
    partitions_rewritten: 0,
    dates: [],
    more: false,
    duration_ms: 0,
  };
  const progress = await readSilverProgress(store);
  const { taken, more } = takeBudget(
    pendingBatches(await lake.bronze.snapshot(), progress),
    options.maxRowsPerRun ?? 2_000_000,
    options.maxFilesPerRun ?? 8_000,
  );
  stats.more = more;
  if (taken.length > 0) {
    // Each run stages under a fresh directory of its own, removed whatever happens.
    const scratch = await Deno.makeTempDir({
      prefix: "streamgate-silver-",
      ...(options.scratchDir ? { dir: options.scratchDir } : {}),
    });
    try {
      const keyFiles = await stage(engine, lake, taken, scratch, settings, stats);
      stats.batches_read = taken.length;
      const staged = await listStaged(join(scratch, "in"));
      const losers = await findLosers(engine, staged, keyFiles);
      const dates = await mergeAll(engine, lake, staged, losers, settings, stats);
      await options.beforeProgress?.();
      await writeProgress(store, progress, taken, dates);
    } finally {
      await removeIfExists(scratch);
    }
  }
  stats.duration_ms = Math.round(performance.now() - started);
  return stats;
}

/**
 * Steps 1–2: reads the batches a group of files at a time, casts the payloads in the worker and
 * stages the rows per table and occurred date under `scratch/in`, and the rows' keys (for
 * deduplication across partitions) under `scratch/keys`. Returns the key files.
 */
async function stage(
  engine: LakeEngine,
  lake: Lake,
  taken: Batch[],
  scratch: string,
  settings: Settings,
  stats: SilverStats,
): Promise<string[]> {
  for (const t of [...SILVER_DOMAINS, "_rejects"]) {
    await Deno.mkdir(join(scratch, "in", t), { recursive: true });
  }
  await Deno.mkdir(join(scratch, "keys"));
  const keyFiles: string[] = [];
  let seq = 0;
  for (const group of readGroups(taken, settings.readRows, settings.maxFilesPerRead)) {
    const paths = await localFiles(lake.store, group.map((f) => lake.bronze.fileKey(f.path)));
    // The bronze type comes from each file's `type=` directory (a deep UNION ALL of one read
    // per type overflows duckdb-wasm's stack).
    const [loaded] = await engine.exec<{ Count: bigint }>(
      `CREATE OR REPLACE TEMP TABLE silver_src AS
       SELECT row_number() OVER () AS rid, event_id, event_type, user_id, occurred_at,
              received_at, source, payload, log_topic, log_partition, log_offset,
              regexp_extract(filename, '/type=([a-z][a-z0-9_]*)/[^/]+$', 1) AS bronze_type
         FROM read_parquet(${sqlFileList(paths)}, union_by_name = true,
                           hive_partitioning = false, filename = true)`,
    );
    stats.rows_in += Number(loaded?.Count ?? 0);
    stats.files_read += group.length;
    const counts = await engine.castJson(
      "SELECT rid, bronze_type AS type, event_type, payload FROM silver_src",
      CAST_SPEC,
      "silver_cast",
    );
    const keys = join(scratch, "keys", `${++seq}.parquet`);
    await stageStep(engine, counts, join(scratch, "in"), String(seq), keys);
    keyFiles.push(keys);
  }
  await engine.exec(
    `DROP TABLE IF EXISTS silver_src; ${
      [...SILVER_DOMAINS, "_rejects"].map((d) => `DROP TABLE IF EXISTS "silver_cast_${d}"`)
        .join("; ")
    }`,
  );
  return keyFiles;
}

/** Writes one read step's cast rows, rejects and keys to the scratch directory. */
async function stageStep(
  engine: LakeEngine,
  counts: Record<string, number>,
  dir: string,
  n: string,
  keys: string,
): Promise<void> {
  const common = COMMON_COLUMNS.map((c) => `s."${c.name}"`).join(", ");
  // The UTC date of occurred_at, without ICU (this build has no time zone functions).
  const day = `CAST(CAST(CAST(s.occurred_at AS TIMESTAMP) AS DATE) AS VARCHAR)`;
  const odt = `${day} AS odt`;
  for (const d of SILVER_DOMAINS) {
    if (!counts[`silver_cast_${d}`]) continue;
    const fields = SILVER_SPECS[d].fields.map((f) => `c."${f.name}"`).join(", ");
    await engine.exec(
      `COPY (SELECT ${common}, ${fields}, c.extra, ${odt}
               FROM silver_src s JOIN "silver_cast_${d}" c USING (rid))
         TO ${sqlPath(join(dir, d, n))} (FORMAT PARQUET, PARTITION_BY (odt))`,
    );
  }
  const rejected = Boolean(counts["silver_cast__rejects"]);
  if (rejected) {
    await engine.exec(
      `COPY (SELECT ${common}, s.bronze_type, s.payload, c.reason, ${odt}
               FROM silver_src s JOIN "silver_cast__rejects" c USING (rid))
         TO ${sqlPath(join(dir, "_rejects", n))} (FORMAT PARQUET, PARTITION_BY (odt))`,
    );
  }
  // The keys of this step's rows and their partition, for deduplication across partitions.
  await engine.exec(
    `COPY (SELECT s.event_id, s.received_at, s.log_topic, s.log_partition, s.log_offset,
                  ${DOMAIN_OF_TYPE} || '/' || ${day} AS g
             FROM silver_src s
             ${rejected ? `WHERE s.rid NOT IN (SELECT rid FROM "silver_cast__rejects")` : ""})
       TO ${sqlPath(keys)} (FORMAT PARQUET)`,
  );
}

/**
 * Step 3a: an `event_id` staged under two partitions in this run (two dates or two domains) keeps
 * only its winning copy; the others go into the temporary table `silver_losers`. Returns whether
 * there are any.
 */
async function findLosers(
  engine: LakeEngine,
  staged: Map<string, string[]>,
  keyFiles: string[],
): Promise<boolean> {
  const domainKeys = [...staged.keys()].filter((k) => !k.startsWith("_rejects/"));
  if (domainKeys.length <= 1) return false;
  await createTempFrom(engine, "silver_keys", keyFiles, (src) => `SELECT * FROM ${src}`);
  const [row] = await engine.exec<{ n: bigint }>(
    `CREATE OR REPLACE TEMP TABLE silver_losers AS
     WITH multi AS (
       SELECT event_id FROM silver_keys GROUP BY event_id HAVING min(g) <> max(g)
     )
     SELECT log_topic, log_partition, log_offset FROM (
       SELECT *, first_value(g) OVER (PARTITION BY event_id
                 ORDER BY received_at, log_topic, log_partition, log_offset) AS winner
         FROM silver_keys WHERE event_id IN (SELECT event_id FROM multi)
     ) WHERE g <> winner;
     DROP TABLE silver_keys;
     SELECT count(*) AS n FROM silver_losers`,
  );
  return Number(row?.n ?? 0) > 0;
}

/**
 * Step 3b: merges each staged partition with its current files into one new file, then replaces
 * the partitions of each table in one commit.
 */
async function mergeAll(
  engine: LakeEngine,
  lake: Lake,
  staged: Map<string, string[]>,
  losers: boolean,
  settings: Settings,
  stats: SilverStats,
): Promise<Set<string>> {
  const dates = new Set<string>();
  const replacements = new Map<string, PartitionReplacement>();
  for (const key of [...staged.keys()].sort()) {
    const [table, dt] = key.split("/") as [string, string];
    const rejects = table === "_rejects";
    const spec = rejects ? undefined : SILVER_SPECS[table as Domain];
    let replace = replacements.get(table);
    if (!replace) {
      replace = new PartitionReplacement(
        rejects ? lake.silverRejects : lake.silver(table as Domain),
      );
      replacements.set(table, replace);
    }
    const old = await localFiles(lake.store, await replace.read(dt));
    let before = 0;
    for (const f of old) before += await countRows(engine, f);
    const out = await mergePartition(engine, {
      columns: spec ? spec.columns : REJECT_COLUMNS,
      old,
      staged: staged.get(key)!,
      excludeLosers: losers && !rejects,
      maxFiles: settings.maxFilesPerRead,
    });
    // Every staged row lost to a copy under another date or domain: no partition to create.
    if (out.rows === 0 && old.length === 0) {
      replace.forget(dt);
      continue;
    }
    await replace.write(dt, out);
    stats.partitions_rewritten++;
    if (spec) {
      stats.rows_new[spec.domain] += out.rows - before;
      stats.rows_written[spec.domain] += out.rows;
      dates.add(dt);
    } else {
      stats.rejects_new += out.rows - before;
    }
  }
  for (const replace of replacements.values()) await replace.commit();
  const gained = Object.values(stats.rows_new).reduce((a, b) => a + b, 0) + stats.rejects_new;
  stats.duplicates = stats.rows_in - gained;
  stats.dates = [...dates].sort();
  if (losers) await engine.exec("DROP TABLE IF EXISTS silver_losers");
  return dates;
}

/** Step 4: the watermarks past the batches read, and the dates rewritten, replaced last. */
async function writeProgress(
  store: ObjectStore,
  progress: SilverProgress,
  taken: Batch[],
  dates: Set<string>,
): Promise<void> {
  const next: SilverProgress = {
    run: progress.run + 1,
    watermarks: { ...progress.watermarks },
    dates: { ...progress.dates },
  };
  for (const b of taken) {
    next.watermarks[b.key] = Math.max(next.watermarks[b.key] ?? 0, b.last + 1);
  }
  for (const dt of dates) next.dates[dt] = next.run;
  await writeJson(store, JOB_KEYS.silverProgress, next);
}

/** The staged files, by `<table>/<date>` (`in/<table>/<n>/odt=<date>/*.parquet`). */
async function listStaged(dir: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const entries = async (d: string) => {
    try {
      return (await Array.fromAsync(Deno.readDir(d))).sort((a, b) => a.name < b.name ? -1 : 1);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
  };
  for (const table of await entries(dir)) {
    for (const n of await entries(join(dir, table.name))) {
      for (const part of await entries(join(dir, table.name, n.name))) {
        const dt = part.name.slice(4);
        if (!part.name.startsWith("odt=") || !DATE.test(dt)) continue;
        for (const f of await entries(join(dir, table.name, n.name, part.name))) {
          if (!f.name.endsWith(".parquet")) continue;
          const key = `${table.name}/${dt}`;
          const path = join(dir, table.name, n.name, part.name, f.name);
          const list = out.get(key);
          if (list) list.push(path);
          else out.set(key, [path]);
        }
      }
    }
  }
  return out;
}

/**
 * The old partition files plus the staged rows as one Parquet file with one row per `event_id`
 * (earliest `received_at`, then lowest log position), sorted by `occurred_at`, in the column
 * order and types of `columns` (columns an old file lacks read as NULL).
 */
async function mergePartition(engine: LakeEngine, m: {
  columns: readonly SilverColumn[];
  old: string[];
  staged: string[];
  excludeLosers: boolean;
  maxFiles: number;
}): Promise<ParquetOut> {
  const names = m.columns.map((c) => `"${c.name}"`).join(", ");
  const cast = m.columns.map((c) => `CAST(s."${c.name}" AS ${c.sql}) AS "${c.name}"`).join(", ");
  let source: string;
  if (m.staged.length + m.old.length <= m.maxFiles) {
    source = sqlReadParquet([...m.old, ...m.staged]);
  } else {
    // Too many files for one scan: gather them in a temporary table first.
    await createTempFrom(
      engine,
      "silver_merge_in",
      m.staged,
      (src) => `SELECT ${cast} FROM ${src} AS s`,
      m.maxFiles,
    );
    for (const old of m.old) {
      const have = await parquetColumns(engine, old);
      const cols = m.columns.map((c) =>
        have.has(c.name)
          ? `CAST(s."${c.name}" AS ${c.sql}) AS "${c.name}"`
          : `CAST(NULL AS ${c.sql}) AS "${c.name}"`
      ).join(", ");
      await engine.exec(
        `INSERT INTO silver_merge_in SELECT ${cols} FROM ${sqlReadParquet([old])} AS s`,
      );
    }
    source = "silver_merge_in";
  }
  const where = m.excludeLosers
    ? `WHERE NOT EXISTS (SELECT 1 FROM silver_losers l WHERE l.log_topic = s.log_topic
         AND l.log_partition = s.log_partition AND l.log_offset = s.log_offset)`
    : "";
  const out = await engine.copyParquet(
    `SELECT ${names} FROM (
       SELECT ${cast}, row_number() OVER (PARTITION BY s.event_id
              ORDER BY s.received_at, s.log_topic, s.log_partition, s.log_offset) AS _rn
         FROM ${source} AS s
         ${where}
     ) WHERE _rn = 1
     ORDER BY occurred_at, event_id`,
    "COMPRESSION ZSTD, ROW_GROUP_SIZE 122880",
  );
  if (source === "silver_merge_in") await engine.exec("DROP TABLE silver_merge_in");
  return out;
}
