/**
 * Silver's last step: the run's new rows of each (table, occurred date) become new files, sorted by
 * `user_key` (a hash of `user_id`, see `layout.ts`), `user_id`, then `occurred_at` (and
 * `event_id`), in row groups small enough that a reader looking for one user skips most of a file
 * by its `user_key` min/max statistics. A run costs what its new rows cost: each shard's rows
 * become a file beside the partition's files. Files are merged (with the first shard's new rows)
 * only when a partition would hold more than `maxFilesPerPartition` files, size-tiered
 * ({@link toCompact}): the small files recent runs appended, and the day's big file only once they
 * weigh half as much; or, all of them, when the partition holds a copy the new rows beat
 * (`dedupe.ts`). The shards write in parallel, each on its engine; one commit per table
 * (`delta/replace.ts`) adds (and for merges removes) every file at once.
 *
 * @module
 */
import type { LakeEngine, ParquetOut } from "../engine/engine.ts";
import { countRows, parquetColumns } from "../engine/sql.ts";
import type { Lake } from "../lake.ts";
import { localFiles, sqlReadParquet } from "../layout.ts";
import { type PartitionFile, PartitionReplacement } from "../delta/replace.ts";
import type { FileTags } from "../delta/protocol.ts";
import { DATE } from "../../shared/time.ts";
import type { PartitionRef } from "./dedupe.ts";
import { columnsOf, fillUserKeys, newRows, SILVER_TABLES, type SilverTable } from "./load.ts";

/**
 * `ROW_GROUP_SIZE` of silver files. DuckDB closes a row group once it holds more than this many
 * rows, a vector (2048 rows) at a time: 2047 gives groups of 2048 rows, so a lookup of one user
 * decodes 2048 rows per file, not 10,240.
 */
export const SILVER_ROW_GROUP = 2047;

/** What writing did to one partition. */
export interface Written {
  table: SilverTable;
  dt: string;
  /** Rows the partition gained (new rows, minus copies a rewrite removed). */
  gained: number;
  /** Rows in the files written. */
  rows: number;
}

/** Options of {@link writeTables}. */
export interface WriteOptions {
  /** A partition with more files than this is compacted (see {@link toCompact}). @default 4 */
  maxFilesPerPartition?: number;
}

function tableOf(lake: Lake, t: SilverTable) {
  return t === "_rejects" ? lake.silverRejects : lake.silver(t);
}

/**
 * Writes every table's new rows, held by `engines` (one per shard), and the rewrites; the first
 * engine's `silver_old_losers` must hold every shard's beaten copies.
 */
export async function writeTables(
  engines: readonly LakeEngine[],
  lake: Lake,
  rewrite: readonly PartitionRef[],
  options: WriteOptions,
): Promise<Written[]> {
  const out: Written[] = [];
  for (const t of SILVER_TABLES) {
    const perShard = await Promise.all(engines.map(async (engine) =>
      new Set(
        (await engine.exec<{ odt: string }>(`SELECT DISTINCT odt FROM ${newRows(t)}`))
          .map((d) => d.odt),
      )
    ));
    const rewritten = new Set(rewrite.filter((r) => r.table === t).map((r) => r.dt));
    const dates = [...new Set([...perShard.flatMap((s) => [...s]), ...rewritten])].sort();
    if (dates.length === 0) continue;
    const replace = new PartitionReplacement(tableOf(lake, t));
    const merging = new Map<string, Merge>();
    for (const dt of dates) {
      if (!DATE.test(dt)) throw new Error(`Invalid occurred date "${dt}"`);
      const current = await replace.readFiles(dt);
      const adding = perShard.filter((s) => s.has(dt)).length;
      const max = options.maxFilesPerPartition ?? MAX_FILES_PER_PARTITION;
      const compact = toCompact(current, adding, max) ?? [];
      // A partition holding a copy the new rows beat rewrites the files that hold one, alone.
      const beaten = rewritten.has(dt) ? await holdingLosers(engines[0]!, lake, current) : [];
      const merge = [...new Set([...compact, ...beaten])];
      if (merge.length > 0) {
        const keys = merge.map((f) => f.key);
        merging.set(dt, { keys, paths: await localFiles(lake.store, keys) });
      }
    }
    const results = await Promise.all(
      engines.map((engine, i) =>
        writeShard(
          engine,
          t,
          dates.filter((dt) => perShard[i]!.has(dt) || (i === 0 && merging.has(dt))),
          {
            merging: i === 0 ? merging : new Map(),
            write: (dt, file, replaces, tags) =>
              replace.write(dt, file, {
                ...(replaces ? { replaces } : { append: true }),
                ...(tags ? { tags } : {}),
              }),
          },
        )
      ),
    );
    for (const r of results.flat()) {
      const prev = out.find((w) => w.table === t && w.dt === r.dt);
      if (prev) {
        prev.gained += r.gained;
        prev.rows += r.rows;
      } else out.push({ table: t, ...r });
    }
    for (const dt of dates) if (!out.some((w) => w.table === t && w.dt === dt)) replace.forget(dt);
    await replace.commit();
  }
  return out;
}

/** The files of `files` that hold a row of `silver_old_losers` (reads only their log columns). */
async function holdingLosers(
  engine: LakeEngine,
  lake: Lake,
  files: readonly PartitionFile[],
): Promise<PartitionFile[]> {
  const out: PartitionFile[] = [];
  const paths = await localFiles(lake.store, files.map((f) => f.key));
  for (let i = 0; i < files.length; i++) {
    const [hit] = await engine.query<{ n: number | bigint }>(
      `SELECT count(*) AS n FROM ${sqlReadParquet([paths[i]!])} AS s
        WHERE EXISTS (SELECT 1 FROM silver_old_losers l WHERE l.log_topic = s.log_topic
          AND l.log_partition = s.log_partition AND l.log_offset = s.log_offset)`,
    );
    if (Number(hit?.n ?? 0) > 0) out.push(files[i]!);
  }
  return out;
}

/** Files of a partition merged with a shard's new rows into one: store keys and local paths. */
interface Merge {
  keys: string[];
  paths: string[];
}

/** Default of `maxFilesPerPartition`. */
export const MAX_FILES_PER_PARTITION = 4;

/**
 * Most bytes of existing files one merge reads. A merge sorts its rows in the engine's memory,
 * which DuckDB-wasm cannot spill to disk: a whole day of a 10M-event lake (~150 MB of Parquet)
 * ran a 1 GB engine out of memory. Files this big are left as they are, and a merge takes the
 * smallest files up to this budget, so its memory is bounded whatever the partition's size.
 */
export const MAX_MERGE_BYTES = 32 * 1024 * 1024;

/**
 * The files to merge when a partition would hold more than `max` files once `adding` more join
 * it, else undefined. Size-tiered: the largest file stays as it is unless the others hold half as
 * many bytes as it does, so a run rewrites what recent runs appended, not the whole day each time;
 * files of `maxBytes` or more never take part, and the files taken (smallest first) hold less
 * than `maxBytes` together. A partition of many big files keeps them all: each costs a query one
 * more file to open, never a merge beyond the budget.
 */
export function toCompact(
  files: readonly PartitionFile[],
  adding: number,
  max: number,
  maxBytes = MAX_MERGE_BYTES,
): PartitionFile[] | undefined {
  if (files.length + adding <= max) return undefined;
  const bySize = files.filter((f) => f.size < maxBytes).sort((a, b) => b.size - a.size);
  const [largest, ...rest] = bySize;
  const restBytes = rest.reduce((n, f) => n + f.size, 0);
  const tier = !largest || restBytes * 2 >= largest.size ? bySize : rest;
  const taken: PartitionFile[] = [];
  let bytes = 0;
  for (const f of [...tier].reverse()) {
    if (bytes + f.size >= maxBytes) break;
    taken.push(f);
    bytes += f.size;
  }
  return taken.reverse();
}

/** One shard's files of one table: appends, and (first shard) the merges. */
async function writeShard(
  engine: LakeEngine,
  t: SilverTable,
  dates: string[],
  how: {
    merging: Map<string, Merge>;
    /** `replaces`: store keys of the files the new one replaces; undefined = an append. */
    write: (dt: string, file: ParquetOut, replaces?: string[], tags?: FileTags) => Promise<void>;
  },
): Promise<Omit<Written, "table">[]> {
  const out: Omit<Written, "table">[] = [];
  for (const dt of dates) {
    const merge = how.merging.get(dt);
    const { file, userKeys } = merge
      ? await merged(engine, t, dt, merge.paths)
      : await appended(engine, t, dt);
    let before = 0;
    if (merge) { for (const f of merge.paths) before += await countRows(engine, f); }
    if (file.rows === 0 && (!merge || merge.paths.length === 0)) continue;
    await how.write(dt, file, merge?.keys, userKeys ? { userKeys } : undefined);
    out.push({ dt, gained: file.rows - before, rows: file.rows });
  }
  return out;
}

const ORDER = "ORDER BY user_key, user_id, occurred_at, event_id";
/**
 * Snappy, not ZSTD: measured on a 1M-event lake, a user's events over 14 files took 46 ms of CPU
 * to decode with Snappy and 2,048-row groups, 137 ms with ZSTD and 10,240-row groups (ZSTD
 * decompression is slow in WebAssembly); the files are ~60 % larger.
 */
const OPTIONS = `COMPRESSION SNAPPY, ROW_GROUP_SIZE ${SILVER_ROW_GROUP}`;

/**
 * Files of at most this many rows list their `user_key`s in their tags (`FileTags.userKeys`):
 * the late events of a day make many such files (half of a 1M-event lake's silver files), and
 * each costs a user's query as much to open as a big one.
 */
export const USER_KEYS_MAX_ROWS = 256;

/** A silver file and, when it is small, its `user_key`s. */
interface SilverFile {
  file: ParquetOut;
  userKeys?: number[];
}

/** The sorted distinct `user_key`s of `from` (lake-built SQL) if `file` is small. */
async function userKeysOf(
  engine: LakeEngine,
  file: ParquetOut,
  from: string,
): Promise<SilverFile> {
  if (file.rows === 0 || file.rows > USER_KEYS_MAX_ROWS) return { file };
  const rows = await engine.query<{ k: number | null }>(
    `SELECT DISTINCT user_key AS k FROM ${from} ORDER BY k`,
  );
  // A row without a key cannot be listed: the file is then read like any other.
  if (rows.some((r) => r.k === null)) return { file };
  return { file, userKeys: rows.map((r) => Number(r.k)) };
}

/** The new rows of one partition, sorted. */
async function appended(engine: LakeEngine, t: SilverTable, dt: string): Promise<SilverFile> {
  const names = columnsOf(t).map((c) => `"${c.name}"`).join(", ");
  const from = `${newRows(t)} WHERE odt = '${dt}'`;
  const file = await engine.copyParquet(`SELECT ${names} FROM ${from} ${ORDER}`, OPTIONS);
  return await userKeysOf(engine, file, from);
}

/**
 * The partition's current files, without the copies the new rows beat (`silver_old_losers`),
 * and its new rows, as one file: one row per `event_id` (the first received), sorted.
 */
async function merged(
  engine: LakeEngine,
  t: SilverTable,
  dt: string,
  current: string[],
): Promise<SilverFile> {
  const columns = columnsOf(t);
  const names = columns.map((c) => `"${c.name}"`).join(", ");
  await engine.exec(
    `CREATE OR REPLACE TEMP TABLE silver_merge AS
     SELECT ${names} FROM ${newRows(t)} WHERE odt = '${dt}'`,
  );
  // A file written before a column existed reads it as NULL.
  for (const file of current) {
    const have = await parquetColumns(engine, file);
    const cast = columns.map((c) =>
      have.has(c.name)
        ? `CAST(s."${c.name}" AS ${c.sql}) AS "${c.name}"`
        : `CAST(NULL AS ${c.sql}) AS "${c.name}"`
    );
    await engine.exec(
      `INSERT INTO silver_merge
       SELECT ${cast.join(", ")} FROM ${sqlReadParquet([file])} AS s
        WHERE NOT EXISTS (SELECT 1 FROM silver_old_losers l WHERE l.log_topic = s.log_topic
          AND l.log_partition = s.log_partition AND l.log_offset = s.log_offset)`,
    );
  }
  await fillUserKeys(engine, "silver_merge");
  const out = await engine.copyParquet(
    `SELECT ${names} FROM (
       SELECT *, row_number() OVER (PARTITION BY event_id
              ORDER BY received_at, log_topic, log_partition, log_offset) AS _rn
         FROM silver_merge) WHERE _rn = 1 ${ORDER}`,
    OPTIONS,
  );
  // The rows before deduplication: a superset of the file's keys, which only costs a read.
  const tagged = await userKeysOf(engine, out, "silver_merge");
  await engine.exec("DROP TABLE IF EXISTS silver_merge");
  return tagged;
}
