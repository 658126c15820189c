/**
 * Test helpers that read the lake back: DuckDB (the same engine the gateway writes with) over the
 * bronze Parquet files.
 *
 * @module
 */
import { dirname, join, sep as SEP } from "node:path";
import { BronzeWriter } from "../lake/bronze.ts";
import { LocalStore } from "../lake/storage/local.ts";
import { Lake } from "../lake/lake.ts";
import type { DeltaTable } from "../lake/delta/table.ts";
import { chunkList } from "../lake/query/files.ts";
import { PartitionReplacement } from "../lake/delta/replace.ts";
import type { Column, LakeEngine } from "../lake/engine/engine.ts";
import type { Envelope } from "../shared/schemas.ts";

/** One bronze row as read back. */
export interface BronzeReadRow {
  event_id: string;
  event_type: string;
  user_id: string;
  occurred_us: number;
  received_us: number;
  payload: string;
  log_topic: string;
  log_partition: number;
  log_offset: number;
  dt: string;
  type: string;
  file: string;
}

/**
 * Every file under a directory, recursively, as full paths; with `dirs`, the directories too (each
 * ending with the separator). A directory that does not exist has no files.
 */
export async function filesUnder(dir: string, { dirs = false } = {}): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string) {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(d));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    for (const e of entries) {
      const path = join(d, e.name);
      if (e.isDirectory) {
        if (dirs) out.push(path + SEP);
        await walk(path);
      } else out.push(path);
    }
  }
  await walk(dir);
  return out;
}

/** Every Parquet file under a directory, recursively, sorted. */
export async function parquetFiles(dir: string): Promise<string[]> {
  return (await filesUnder(dir)).filter((f) => f.endsWith(".parquet")).sort();
}

/** The lake in a test directory: its tables over a local store (opening creates the directory). */
export async function lakeOf(lakeDir: string, engine: LakeEngine): Promise<Lake> {
  return new Lake(await LocalStore.open(lakeDir), engine);
}

/** The lake in a directory, read only: never creates it; `undefined` when it does not exist. */
async function existingLake(lakeDir: string, engine: LakeEngine): Promise<Lake | undefined> {
  try {
    return new Lake(await LocalStore.open(lakeDir, { create: false }), engine);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Local paths of a table's live files (its Delta log's snapshot). */
export async function liveFiles(table: DeltaTable): Promise<string[]> {
  const snapshot = await table.snapshot();
  return await Promise.all(
    [...snapshot.files.keys()].sort().map((p) => table.store.localFile(table.keyOf(p))),
  );
}

/**
 * Reads every bronze row of a lake with DuckDB, hive partitions included: the files of the bronze
 * table's newest snapshot, as any Delta reader would, never files outside it.
 */
export async function readBronze(engine: LakeEngine, lakeDir: string): Promise<BronzeReadRow[]> {
  const lake = await existingLake(lakeDir, engine);
  return lake ? await readBronzeOf(engine, lake) : [];
}

/** {@link readBronze} of a lake on any store. */
export async function readBronzeOf(engine: LakeEngine, lake: Lake): Promise<BronzeReadRow[]> {
  const files = await liveFiles(lake.bronze);
  const rows: Record<string, unknown>[] = [];
  for (const chunk of chunkList(files)) {
    rows.push(
      ...await engine.query<Record<string, unknown>>(
        `SELECT event_id, event_type, user_id, epoch_us(occurred_at) AS occurred_us,
                epoch_us(received_at) AS received_us, payload, log_topic, log_partition, log_offset,
                CAST(dt AS VARCHAR) AS dt, type, filename AS file
           FROM read_parquet(${chunk}, hive_partitioning = 1, filename = 1)`,
      ),
    );
  }
  return rows.map((r) =>
    ({
      ...r,
      occurred_us: Number(r.occurred_us),
      received_us: Number(r.received_us),
      log_partition: Number(r.log_partition),
      log_offset: Number(r.log_offset),
    }) as BronzeReadRow
  ).sort((a, b) =>
    a.log_topic < b.log_topic
      ? -1
      : a.log_topic > b.log_topic
      ? 1
      : a.log_partition - b.log_partition || a.log_offset - b.log_offset
  );
}

/** The next offset of a log partition that is not in bronze yet (its writer's `txn` + 1). */
export async function bronzeNextOffset(
  engine: LakeEngine,
  lakeDir: string,
  topic: string,
  partition: number,
): Promise<number> {
  const lake = await existingLake(lakeDir, engine);
  return lake ? (await lake.bronze.snapshot()).txn(`${topic}+${partition}`) + 1 : 0;
}

/** A valid envelope for tests. */
export function testEvent(overrides: Partial<Envelope> = {}): Envelope {
  return {
    event_id: crypto.randomUUID(),
    type: "login",
    event_type: overrides.type ?? "login",
    user_id: "user-1",
    occurred_at: "2026-11-23T10:00:00.123456Z",
    received_at: "2026-11-23T10:00:01.000000Z",
    source: "test",
    payload: { ip: "10.0.0.1", country: "DE" },
    ...overrides,
  };
}

/** Every row of the lake's alerts table, with its date partition. */
export async function readAlerts(
  engine: LakeEngine,
  lakeDir: string,
): Promise<Record<string, unknown>[]> {
  const lake = await existingLake(lakeDir, engine);
  const files = lake ? await liveFiles(lake.alerts) : [];
  const rows: Record<string, unknown>[] = [];
  for (const chunk of chunkList(files)) {
    rows.push(
      ...await engine.query(
        `SELECT alert_id, user_id, trigger_event_id, trigger_type, rule_score, fraud_score, rules,
                severity, reasons, llm_status, llm_score, llm_disagrees, llm_verdict,
                llm_rationale, window_summary, event_ids, degraded, CAST(dt AS VARCHAR) AS dt
           FROM read_parquet(${chunk}, hive_partitioning = 1)`,
      ),
    );
  }
  return rows.sort((a, b) => String(a.alert_id) < String(b.alert_id) ? -1 : 1);
}

/**
 * Writes one bronze-shaped row whose `source` is `marker` to each of `paths`: places a query must
 * never read (outside the lake, or where the layout does not look). A leak shows the marker.
 */
export async function plantMarkerRows(
  engine: LakeEngine,
  paths: string[],
  marker: string,
  occurredUs: number,
): Promise<void> {
  const row: Record<string, Column> = {
    event_id: { kind: "utf8", values: [crypto.randomUUID()] },
    event_type: { kind: "utf8", values: ["login"] },
    user_id: { kind: "utf8", values: ["u1"] },
    occurred_at: { kind: "timestamp_us", values: Float64Array.of(occurredUs) },
    received_at: { kind: "timestamp_us", values: Float64Array.of(occurredUs) },
    source: { kind: "utf8", values: [marker] },
    payload: { kind: "utf8", values: [JSON.stringify({ m: marker })] },
    log_topic: { kind: "utf8", values: ["wal"] },
    log_partition: { kind: "int32", values: Int32Array.of(0) },
    log_offset: { kind: "int64", values: Float64Array.of(99) },
  };
  for (const p of paths) {
    await Deno.mkdir(dirname(p), { recursive: true });
    await engine.writeParquet(row, p);
  }
}

/** Writes `events` to the lake at `lake` as one bronze batch of `wal+0` from offset 0. */
export async function writeWalBatch(
  engine: LakeEngine,
  lake: string,
  events: Envelope[],
): Promise<void> {
  await new BronzeWriter(engine, (await lakeOf(lake, engine)).bronze).write({
    topic: "wal",
    partition: 0,
    firstOffset: 0,
    lastOffset: events.length - 1,
    rows: events.map((event, offset) => ({ offset, event })),
  });
}

/** The store of a test lake directory (opening it creates the directory). */
export function storeOf(lake: string): Promise<LocalStore> {
  return LocalStore.open(lake);
}

/** Local paths of the live files of the table at `key` (one of `TABLES`) of a test lake. */
export async function tableFiles(engine: LakeEngine, lake: string, key: string): Promise<string[]> {
  return await liveFiles((await lakeOf(lake, engine)).table(key));
}

/** Live files of each `dt` partition of the table at `key`, as `add.path`s. */
export async function partitionFiles(
  engine: LakeEngine,
  lake: string,
  key: string,
): Promise<Map<string, string[]>> {
  const snapshot = await (await lakeOf(lake, engine)).table(key).snapshot();
  const out = new Map<string, string[]>();
  for (const f of snapshot.filesWhere(() => true)) {
    const dt = f.partitionValues.dt ?? "";
    out.set(dt, [...(out.get(dt) ?? []), f.path]);
  }
  return out;
}

/** Makes `columns` the content of partition `dt` of the table at `key` (one commit). */
export async function replacePartition(
  engine: LakeEngine,
  lake: string,
  key: string,
  dt: string,
  columns: Record<string, Column>,
): Promise<void> {
  const replace = new PartitionReplacement((await lakeOf(lake, engine)).table(key));
  await replace.read(dt);
  await replace.write(dt, await engine.parquet(columns));
  await replace.commit();
}
