/**
 * Silver holds each `event_id` once: across the run's new rows (every date and domain), and
 * against the rows silver already holds in any partition whose date lies within the accepted
 * event-time window of the new rows (received date minus `EVENT_MAX_PAST_DAYS`, plus a day each
 * side). The copy kept is the one received first (then the lowest log position); the rejects
 * table is deduplicated the same way on its own.
 *
 * The check against existing rows reads only the `event_id` (and ordering) columns of the
 * window's files, filtered by the new ids in DuckDB: its cost grows with the window, not the
 * table. When an existing copy loses (a copy received earlier reached the log later), its
 * partition is rewritten without it (`write.ts`).
 *
 * @module
 */
import type { LakeEngine } from "../engine/engine.ts";
import type { Lake } from "../lake.ts";
import { addDays } from "../../shared/time.ts";
import { chunked, localFiles, SILVER_DOMAINS, sqlFileList } from "../layout.ts";
import { newRows, type SilverTable } from "./load.ts";

/** A partition of a silver table. */
export interface PartitionRef {
  table: SilverTable;
  dt: string;
}

/** What deduplication found. */
export interface Deduped {
  /** New rows dropped (copies of an event silver holds, or holds from this run). */
  dropped: number;
  /** Partitions that hold a copy the new rows beat: rewrite them without `silver_old_losers`. */
  rewrite: PartitionRef[];
}

const GROUPS: readonly SilverTable[][] = [[...SILVER_DOMAINS], ["_rejects"]];

/** `a` ranks before `b` (received first, then lower log position). */
const BEFORE = (a: string, b: string) =>
  `(${a}.received_at < ${b}.received_at OR (${a}.received_at = ${b}.received_at AND
    (${a}.log_topic < ${b}.log_topic OR (${a}.log_topic = ${b}.log_topic AND
    (${a}.log_partition < ${b}.log_partition OR (${a}.log_partition = ${b}.log_partition AND
    ${a}.log_offset < ${b}.log_offset))))))`;
const SAME_ROW = (a: string, b: string) =>
  `${a}.log_topic = ${b}.log_topic AND ${a}.log_partition = ${b}.log_partition AND
   ${a}.log_offset = ${b}.log_offset`;

/** Deduplicates the run's new rows (see the module documentation). */
export async function dedupe(
  engine: LakeEngine,
  lake: Lake,
  options: { maxPastDays: number; maxFilesPerRead: number },
): Promise<Deduped> {
  const out: Deduped = { dropped: 0, rewrite: [] };
  await engine.exec(
    `CREATE OR REPLACE TEMP TABLE silver_old_losers
       (log_topic VARCHAR, log_partition INTEGER, log_offset BIGINT)`,
  );
  for (const tables of GROUPS) {
    out.dropped += await dedupeRun(engine, tables);
    const found = await dedupeExisting(engine, lake, tables, options);
    out.dropped += found.dropped;
    out.rewrite.push(...found.rewrite);
  }
  await engine.exec("DROP TABLE IF EXISTS silver_keys; DROP TABLE IF EXISTS silver_hits");
  return out;
}

/** The keys of the new rows of `tables`, as `silver_keys` (with their table). */
async function collectKeys(engine: LakeEngine, tables: readonly SilverTable[]): Promise<number> {
  const [row] = await engine.exec<{ n: bigint }>(
    `CREATE OR REPLACE TEMP TABLE silver_keys AS ${
      tables.map((t) =>
        `SELECT event_id, received_at, log_topic, log_partition, log_offset, '${t}' AS tbl
           FROM ${newRows(t)}`
      ).join(" UNION ALL ")
    }; SELECT count(*) AS n FROM silver_keys`,
  );
  return Number(row?.n ?? 0);
}

/** Drops every new row of `tables` that `losers` (a query of log positions) names. */
async function dropNew(
  engine: LakeEngine,
  tables: readonly SilverTable[],
  losers: string,
): Promise<number> {
  // The losers once, then a join per table (most runs find a few).
  const [count] = await engine.exec<{ n: bigint }>(
    `CREATE OR REPLACE TEMP TABLE silver_drop AS ${losers};
     SELECT count(*) AS n FROM silver_drop`,
  );
  let dropped = 0;
  if (Number(count?.n ?? 0) > 0) {
    for (const t of tables) {
      const [row] = await engine.exec<{ Count: bigint }>(
        `DELETE FROM ${newRows(t)} n WHERE EXISTS (SELECT 1 FROM silver_drop l WHERE ${
          SAME_ROW("l", "n")
        })`,
      );
      dropped += Number(row?.Count ?? 0);
    }
  }
  await engine.exec("DROP TABLE IF EXISTS silver_drop");
  return dropped;
}

/** Within the run: one row per `event_id` over all of `tables`. */
async function dedupeRun(engine: LakeEngine, tables: readonly SilverTable[]): Promise<number> {
  if ((await collectKeys(engine, tables)) === 0) return 0;
  return await dropNew(
    engine,
    tables,
    `SELECT log_topic, log_partition, log_offset FROM (
       SELECT *, row_number() OVER (PARTITION BY event_id
                 ORDER BY received_at, log_topic, log_partition, log_offset) AS rn
         FROM silver_keys) WHERE rn > 1`,
  );
}

/** Against the rows silver holds in the window's partitions of `tables`. */
async function dedupeExisting(
  engine: LakeEngine,
  lake: Lake,
  tables: readonly SilverTable[],
  options: { maxPastDays: number; maxFilesPerRead: number },
): Promise<Deduped> {
  const out: Deduped = { dropped: 0, rewrite: [] };
  if ((await collectKeys(engine, tables)) === 0) return out;
  const [range] = await engine.exec<{ lo: string | null; hi: string | null }>(
    `SELECT CAST(CAST(CAST(min(received_at) AS TIMESTAMP) AS DATE) AS VARCHAR) AS lo,
            CAST(CAST(CAST(max(received_at) AS TIMESTAMP) AS DATE) AS VARCHAR) AS hi
       FROM silver_keys`,
  );
  if (!range?.lo || !range.hi) return out;
  const from = addDays(range.lo, -options.maxPastDays - 1), to = addDays(range.hi, 1);
  // Every live file of the window, and which partition each is.
  const partitionOf = new Map<string, PartitionRef>();
  for (const t of tables) {
    const table = t === "_rejects" ? lake.silverRejects : lake.silver(t);
    const files = (await table.snapshot()).filesWhere((v) => !!v.dt && v.dt >= from && v.dt <= to);
    const paths = await localFiles(lake.store, files.map((f) => table.keyOf(f.path)));
    paths.forEach((p, i) => partitionOf.set(p, { table: t, dt: files[i]!.partitionValues.dt! }));
  }
  if (partitionOf.size === 0) return out;
  await engine.exec(
    `CREATE OR REPLACE TEMP TABLE silver_hits (event_id VARCHAR, received_at TIMESTAMPTZ,
       log_topic VARCHAR, log_partition INTEGER, log_offset BIGINT, file VARCHAR)`,
  );
  for (const chunk of chunked([...partitionOf.keys()], options.maxFilesPerRead)) {
    await engine.exec(
      `INSERT INTO silver_hits
       SELECT event_id, received_at, log_topic, log_partition, log_offset, filename AS file
         FROM read_parquet(${sqlFileList(chunk)}, union_by_name = true,
                           hive_partitioning = false, filename = true)
        WHERE event_id IN (SELECT event_id FROM silver_keys)`,
    );
  }
  // A new row loses to a copy silver holds that ranks first (or is that very row: a rerun).
  out.dropped = await dropNew(
    engine,
    tables,
    `SELECT k.log_topic, k.log_partition, k.log_offset FROM silver_keys k
       JOIN silver_hits h USING (event_id)
      WHERE (${SAME_ROW("h", "k")}) OR ${BEFORE("h", "k")}`,
  );
  // A held copy loses to a new row that ranks first: its partition is rewritten without it.
  const beaten = await engine.exec<{ file: string }>(
    `INSERT INTO silver_old_losers
     SELECT DISTINCT h.log_topic, h.log_partition, h.log_offset FROM silver_hits h
       JOIN silver_keys k USING (event_id) WHERE ${BEFORE("k", "h")};
     SELECT DISTINCT h.file FROM silver_hits h JOIN silver_keys k USING (event_id)
      WHERE ${BEFORE("k", "h")}`,
  );
  const seen = new Set<string>();
  for (const { file } of beaten) {
    const ref = partitionOf.get(file);
    if (!ref || seen.has(`${ref.table}/${ref.dt}`)) continue;
    seen.add(`${ref.table}/${ref.dt}`);
    out.rewrite.push(ref);
  }
  return out;
}
