/**
 * The silver layer: bronze events cast into one typed table per domain, deduplicated by `event_id`,
 * partitioned by the UTC date of `occurred_at`, sorted by `user_id` within each file.
 *
 * ```
 * silver/<domain>/dt=<occurred date>/part-<id>.parquet    auth, commerce, usage, media, sales
 * silver/_rejects/dt=<occurred date>/part-<id>.parquet    rows that could not be cast, with `reason`
 * _progress/silver.json                                   watermarks per log partition, dates changed
 * ```
 *
 * A run, in one pass over its bronze rows:
 * 1. Takes the bronze batches silver has not read (`plan.ts`): whole offset ranges, round robin
 *    over log partitions, until the run's budget (rows, files) is spent (`more: true`).
 * 2. Loads them into the engine, one temporary table per silver table (`load.ts`): bronze files
 *    carry their payload's fields typed (the bronze writer cast them), so this is SQL alone; older
 *    files are cast from their JSON in the worker.
 * 3. Keeps each `event_id` once, across the run and against what silver holds in the accepted
 *    event-time window (`dedupe.ts`).
 * 4. Writes each (table, date)'s new rows as one sorted file beside the partition's files, or
 *    rewrites the partition when it needs compacting or holds a beaten copy (`write.ts`); one
 *    commit per table.
 * 5. Last, replaces its progress object. A crash before that reads the same bronze batches again,
 *    and deduplication against what silver holds makes the replay harmless.
 *
 * Callers hold the jobs lock (see `jobs.ts`): one silver or gold run at a time per lake; a run that
 * loses a race anyway fails its commit and changes nothing.
 *
 * @module
 */
import type { LakeEngine } from "../engine/engine.ts";
import { type Domain, JOB_KEYS, MAX_FILES_PER_READ, SILVER_DOMAINS, writeJson } from "../layout.ts";
import type { Lake } from "../lake.ts";
import type { ObjectStore } from "../storage/store.ts";
import { type Batch, pendingBatches, readGroups, readSilverProgress, takeBudget } from "./plan.ts";
import type { SilverProgress } from "./plan.ts";
import {
  createNewRows,
  dropNewRows,
  fillUserKeys,
  loadGroup,
  newRows,
  type Shard,
} from "./load.ts";
import { SILVER_TABLES } from "./load.ts";
import { dedupe, type PartitionRef } from "./dedupe.ts";
import { writeTables, type Written } from "./write.ts";

/** Options of {@link runSilver}. */
export interface SilverOptions {
  /** Most bronze rows one run reads (estimated from offset ranges). @default 500000 */
  maxRowsPerRun?: number;
  /** Most bronze files one run reads. @default 8000 */
  maxFilesPerRun?: number;
  /** Bronze rows per read-and-cast step (bounds the worker's memory). @default 50000 */
  readRows?: number;
  /** Most files one DuckDB scan opens (see `MAX_FILES_PER_READ`). @default 200 */
  maxFilesPerRead?: number;
  /** Deduplicate against partitions this many days before the new rows' received dates. @default 30 */
  maxPastDays?: number;
  /** A partition with more files than this is compacted (`toCompact` in `write.ts`). @default 4 */
  maxFilesPerPartition?: number;
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
  /** Per domain: rows in the files written. */
  rows_written: Record<Domain, number>;
  rejects_new: number;
  /** Rows read that were already in silver or duplicated another row (by `event_id`). */
  duplicates: number;
  /** Partitions written to (a file added, or the partition rewritten). */
  partitions_rewritten: number;
  /** Occurred dates whose domain partitions changed. */
  dates: string[];
  /** Committed bronze left for the next run (the run's budget was reached). */
  more: boolean;
  duration_ms: number;
}

const emptyDomains = () =>
  Object.fromEntries(SILVER_DOMAINS.map((d) => [d, 0])) as Record<Domain, number>;

/**
 * Runs silver once. See the module documentation. With several engines the run is split into
 * shards by `event_id` (`load.ts`): each engine loads, casts and deduplicates its shard's rows at
 * the same time, then writes its own files; the first engine also merges rewritten partitions.
 */
export async function runSilver(
  engines: LakeEngine | readonly LakeEngine[],
  lake: Lake,
  options: SilverOptions = {},
): Promise<SilverStats> {
  const started = performance.now();
  const all = Array.isArray(engines) ? engines : [engines as LakeEngine];
  if (all.length === 0) throw new Error("runSilver needs at least one engine");
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
  const progress = await readSilverProgress(lake.store);
  const { taken, more } = takeBudget(
    pendingBatches(await lake.bronze.snapshot(), progress),
    options.maxRowsPerRun ?? 500_000,
    options.maxFilesPerRun ?? 8_000,
  );
  stats.more = more;
  if (taken.length > 0) {
    try {
      const shards = await Promise.all(
        all.map((engine, index) =>
          loadShard(engine, lake, taken, { index, count: all.length }, options)
        ),
      );
      stats.rows_in = shards.reduce((n, s) => n + s.rows, 0);
      stats.files_read = shards[0]!.files;
      stats.batches_read = taken.length;
      await gatherLosers(all);
      const rewrite = shards.flatMap((s) => s.rewrite);
      const written = await writeTables(all, lake, rewrite, {
        ...(options.maxFilesPerPartition
          ? { maxFilesPerPartition: options.maxFilesPerPartition }
          : {}),
      });
      tally(stats, written);
      await options.beforeProgress?.();
      await writeProgress(lake.store, progress, taken, new Set(stats.dates));
    } finally {
      await Promise.all(all.map(async (engine) => {
        await dropNewRows(engine);
        await engine.exec("DROP TABLE IF EXISTS silver_old_losers");
      }));
    }
  }
  stats.duration_ms = Math.round(performance.now() - started);
  return stats;
}

/** Steps 2 and 3 on one engine: its shard of the run's rows, loaded and deduplicated. */
async function loadShard(
  engine: LakeEngine,
  lake: Lake,
  taken: Batch[],
  shard: Shard,
  options: SilverOptions,
): Promise<{ rows: number; files: number; rewrite: PartitionRef[] }> {
  const maxFilesPerRead = options.maxFilesPerRead ?? MAX_FILES_PER_READ;
  await createNewRows(engine);
  let rows = 0, files = 0;
  for (const group of readGroups(taken, options.readRows ?? 50_000, maxFilesPerRead)) {
    rows += await loadGroup(engine, lake, group, shard);
    files += group.length;
  }
  const { rewrite } = await dedupe(engine, lake, {
    maxPastDays: options.maxPastDays ?? 30,
    maxFilesPerRead,
  });
  for (const t of SILVER_TABLES) await fillUserKeys(engine, newRows(t));
  return { rows, files, rewrite };
}

/** The copies other shards beat, into the first engine's `silver_old_losers` (it merges). */
async function gatherLosers(engines: readonly LakeEngine[]): Promise<void> {
  const [first, ...rest] = engines;
  for (const engine of rest) {
    const found = await engine.queryColumns(
      "SELECT log_topic, log_partition, log_offset FROM silver_old_losers",
    );
    if (found.rows === 0) continue;
    await first!.load("silver_shard_losers", {
      log_topic: { kind: "utf8", values: found.columns.log_topic as string[] },
      log_partition: {
        kind: "int32",
        values: Int32Array.from(found.columns.log_partition as ArrayLike<number>),
      },
      log_offset: {
        kind: "int64",
        values: Float64Array.from(found.columns.log_offset as ArrayLike<number>),
      },
    });
    await first!.exec(
      `INSERT INTO silver_old_losers SELECT log_topic, log_partition, log_offset
         FROM silver_shard_losers; DROP TABLE silver_shard_losers`,
    );
  }
}

/** Adds what was written to the run's statistics. */
function tally(stats: SilverStats, written: readonly Written[]): void {
  const dates = new Set<string>();
  for (const w of written) {
    stats.partitions_rewritten++;
    if (w.table === "_rejects") {
      stats.rejects_new += w.gained;
      continue;
    }
    stats.rows_new[w.table] += w.gained;
    stats.rows_written[w.table] += w.rows;
    dates.add(w.dt);
  }
  const gained = Object.values(stats.rows_new).reduce((a, b) => a + b, 0) + stats.rejects_new;
  stats.duplicates = stats.rows_in - gained;
  stats.dates = [...dates].sort();
}

/** Step 4: the watermarks past the batches read, and the dates rewritten, replaced last. */
async function writeProgress(
  store: ObjectStore,
  progress: SilverProgress,
  taken: Batch[],
  dates: Set<string>,
): Promise<void> {
  const next: SilverProgress = {
    layout: progress.layout,
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
