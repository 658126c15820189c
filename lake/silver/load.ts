/**
 * Silver's first step: the bronze rows of a run, cast into one temporary table per silver table
 * (`silver_new_<domain>`, `silver_new__rejects`) with their occurred date (`odt`), in the engine's
 * memory. Bronze files written with typed payload columns (tag `typed`) are read with SQL alone:
 * the bronze writer already cast each payload. Older files are cast in the worker from their JSON
 * (`castJson`, `cast.ts`).
 *
 * @module
 */
import type { LakeEngine } from "../engine/engine.ts";
import type { Lake } from "../lake.ts";
import { type Domain, localFiles, SILVER_DOMAINS, sqlFileList } from "../layout.ts";
import { bronzeFields, CAST_SPEC, COMMON_COLUMNS, REJECT_COLUMNS, SILVER_SPECS } from "./spec.ts";
import type { SilverColumn } from "./spec.ts";
import type { PlannedFile } from "./plan.ts";
import { DOMAINS, type EventType } from "../../shared/schemas.ts";

/** The silver tables a run writes: every domain, then the rejects. */
export const SILVER_TABLES = [...SILVER_DOMAINS, "_rejects"] as const;
export type SilverTable = (typeof SILVER_TABLES)[number];

/** The temporary table of a run's new rows of `table`. */
export function newRows(table: SilverTable): string {
  return `"silver_new_${table}"`;
}

/** The columns of a silver table, in file order. */
export function columnsOf(table: SilverTable): readonly SilverColumn[] {
  return table === "_rejects" ? REJECT_COLUMNS : SILVER_SPECS[table].columns;
}

/** The UTC date of occurred_at, without ICU (this build has no time zone functions). */
export const OCCURRED_DATE = `CAST(CAST(CAST(occurred_at AS TIMESTAMP) AS DATE) AS VARCHAR)`;

const quote = (name: string) => `"${name}"`;

/** (Re)creates the empty temporary tables of a run. */
export async function createNewRows(engine: LakeEngine): Promise<void> {
  await engine.exec(
    SILVER_TABLES.map((t) =>
      `CREATE OR REPLACE TEMP TABLE ${newRows(t)} (${
        [...columnsOf(t).map((c) => `${quote(c.name)} ${c.sql}`), "odt VARCHAR"].join(", ")
      })`
    ).join("; "),
  );
}

/** Drops the temporary tables of a run. */
export async function dropNewRows(engine: LakeEngine): Promise<void> {
  await engine.exec(SILVER_TABLES.map((t) => `DROP TABLE IF EXISTS ${newRows(t)}`).join("; "));
}

const COMMON = COMMON_COLUMNS.map((c) => quote(c.name)).join(", ");

/**
 * One engine's share of a run: the rows whose `event_id` hashes to `index` of `count` shards.
 * Every copy of an event lands in one shard, so each shard deduplicates on its own.
 */
export interface Shard {
  index: number;
  count: number;
}

/**
 * SQL: the rows of a shard (all rows when there is one shard). duckdb-wasm 1.28 answers 0 for
 * every `hash(x) % 2` (UBIGINT modulo is broken in this build), so the hash's high bits are taken
 * as a BIGINT first.
 */
export function inShard(shard: Shard, column = "event_id"): string {
  if (!Number.isInteger(shard.count) || !Number.isInteger(shard.index)) {
    throw new Error("A shard is two integers");
  }
  return shard.count <= 1
    ? "true"
    : `CAST(hash(${column}) >> 33 AS BIGINT) % ${shard.count} = ${shard.index}`;
}

/** Loads one group of bronze files, the shard's rows only; resolves with the bronze rows read. */
export async function loadGroup(
  engine: LakeEngine,
  lake: Lake,
  files: readonly PlannedFile[],
  shard: Shard = { index: 0, count: 1 },
): Promise<number> {
  const typed = files.filter((f) => f.typed), untyped = files.filter((f) => !f.typed);
  // Typed files count by the log's row counts, once (the first shard); untyped ones by the rows
  // each shard loads.
  let rows = 0;
  for (const d of SILVER_DOMAINS) {
    const mine = typed.filter((f) => DOMAINS[f.type as EventType] === d);
    if (mine.length > 0) await loadTyped(engine, lake, d, mine, shard);
  }
  // Rejects: `other` files whole, and the rare rejected row of a known type.
  const rejecting = typed.filter((f) => f.mayReject);
  if (rejecting.length > 0) {
    const paths = await localFiles(lake.store, rejecting.map((f) => lake.bronze.fileKey(f.path)));
    await engine.exec(
      `INSERT INTO ${newRows("_rejects")} (${REJECT_COLUMNS.map((c) => quote(c.name))}, odt)
       SELECT ${COMMON}, ${BRONZE_TYPE} AS bronze_type, payload, reject AS reason,
              ${OCCURRED_DATE} AS odt
         FROM read_parquet(${sqlFileList(paths)}, union_by_name = true,
                           hive_partitioning = false, filename = true)
        WHERE reject IS NOT NULL AND ${inShard(shard)}`,
    );
    // Rows of `other` files are counted here; rejected rows of typed domain files were not.
  }
  if (shard.index === 0) rows += typed.reduce((n, f) => n + f.rows, 0);
  if (untyped.length > 0) rows += await loadUntyped(engine, lake, untyped, shard);
  return rows;
}

/** The bronze partition type of a row, from its file's `type=` directory. */
const BRONZE_TYPE = `regexp_extract(filename, '/type=([a-z][a-z0-9_]*)/[^/]+$', 1)`;

/** A domain's typed bronze files: one SQL statement, no JSON parsed. */
async function loadTyped(
  engine: LakeEngine,
  lake: Lake,
  domain: Domain,
  files: readonly PlannedFile[],
  shard: Shard,
): Promise<void> {
  const present = new Set(files.flatMap((f) => bronzeFields(f.type).map((c) => c.name)));
  const fields = SILVER_SPECS[domain].fields.map((f) =>
    present.has(f.name)
      ? `CAST(${quote(f.name)} AS ${f.sql}) AS ${quote(f.name)}`
      : `CAST(NULL AS ${f.sql}) AS ${quote(f.name)}`
  );
  const paths = await localFiles(lake.store, files.map((f) => lake.bronze.fileKey(f.path)));
  const columns = SILVER_SPECS[domain].columns.map((c) => quote(c.name));
  await engine.exec(
    `INSERT INTO ${newRows(domain)} (${columns}, odt)
     SELECT ${COMMON}, ${fields.join(", ")}, extra, payload, ${OCCURRED_DATE} AS odt
       FROM read_parquet(${sqlFileList(paths)}, union_by_name = true, hive_partitioning = false)
      WHERE reject IS NULL AND ${inShard(shard)}`,
  );
}

/** Bronze files from before typed payload columns: cast from JSON inside the worker. */
async function loadUntyped(
  engine: LakeEngine,
  lake: Lake,
  files: readonly PlannedFile[],
  shard: Shard,
): Promise<number> {
  const paths = await localFiles(lake.store, files.map((f) => lake.bronze.fileKey(f.path)));
  const [loaded] = await engine.exec<{ Count: bigint }>(
    `CREATE OR REPLACE TEMP TABLE silver_src AS
     SELECT row_number() OVER () AS rid, ${COMMON}, payload, ${BRONZE_TYPE} AS bronze_type
       FROM read_parquet(${sqlFileList(paths)}, union_by_name = true,
                         hive_partitioning = false, filename = true)
      WHERE ${inShard(shard)}`,
  );
  const counts = await engine.castJson(
    "SELECT rid, bronze_type AS type, event_type, payload FROM silver_src",
    CAST_SPEC,
    "silver_cast",
  );
  const common = COMMON_COLUMNS.map((c) => `s.${quote(c.name)}`).join(", ");
  const odt = `CAST(CAST(CAST(s.occurred_at AS TIMESTAMP) AS DATE) AS VARCHAR)`;
  for (const d of SILVER_DOMAINS) {
    if (!counts[`silver_cast_${d}`]) continue;
    const fields = SILVER_SPECS[d].fields.map((f) => `c.${quote(f.name)}`).join(", ");
    await engine.exec(
      `INSERT INTO ${newRows(d)} (${SILVER_SPECS[d].columns.map((c) => quote(c.name))}, odt)
       SELECT ${common}, ${fields}, c.extra, s.payload, ${odt}
         FROM silver_src s JOIN "silver_cast_${d}" c USING (rid)`,
    );
  }
  if (counts["silver_cast__rejects"]) {
    await engine.exec(
      `INSERT INTO ${newRows("_rejects")} (${REJECT_COLUMNS.map((c) => quote(c.name))}, odt)
       SELECT ${common}, s.bronze_type, s.payload, c.reason, ${odt}
         FROM silver_src s JOIN "silver_cast__rejects" c USING (rid)`,
    );
  }
  await engine.exec(
    `DROP TABLE IF EXISTS silver_src; ${
      SILVER_TABLES.map((d) => `DROP TABLE IF EXISTS "silver_cast_${d}"`).join("; ")
    }`,
  );
  return Number(loaded?.Count ?? 0);
}
