/**
 * SQL steps the jobs share, over lake files the store handed out as local files.
 *
 * @module
 */
import type { LakeEngine } from "./engine.ts";
import { chunked, MAX_FILES_PER_READ, sqlPath, sqlReadParquet } from "../layout.ts";

/** Row count of a Parquet file (from its metadata). */
export async function countRows(engine: LakeEngine, path: string): Promise<number> {
  const [row] = await engine.exec<{ n: bigint }>(
    `SELECT count(*) AS n FROM read_parquet(${sqlPath(path)}, hive_partitioning = false)`,
  );
  return Number(row?.n ?? 0);
}

/**
 * Creates temporary table `name` from `select(<read_parquet of some files>)` over all `files`,
 * at most `MAX_FILES_PER_READ` files per scan.
 */
export async function createTempFrom(
  engine: LakeEngine,
  name: string,
  files: readonly string[],
  select: (source: string) => string,
  maxFiles = MAX_FILES_PER_READ,
): Promise<void> {
  const parts = chunked(files, maxFiles);
  if (parts.length === 0) throw new Error(`No files for ${name}`);
  for (let i = 0; i < parts.length; i++) {
    const sql = select(sqlReadParquet(parts[i]!));
    await engine.exec(
      i === 0 ? `CREATE OR REPLACE TEMP TABLE ${name} AS ${sql}` : `INSERT INTO ${name} ${sql}`,
    );
  }
}

/** The column names of a Parquet file. */
export async function parquetColumns(engine: LakeEngine, path: string): Promise<Set<string>> {
  const rows = await engine.exec<{ name: string }>(
    `SELECT name FROM parquet_schema(${sqlPath(path)})`,
  );
  return new Set(rows.map((r) => r.name));
}
