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
 *    worker (`castJson`, `silver_cast.ts`): duckdb-wasm 1.28 has no JSON functions, and parsing
 *    next to the data keeps a million payloads off the main thread. The fields of the event's own
 *    type become the domain's typed columns; other payload fields go to `extra` as JSON. Rows are
 *    staged as Parquet per (table, occurred date).
 * 3. An `event_id` staged under two partitions in this run (two dates or two domains) keeps only
 *    its winning copy. Then, per affected partition, DuckDB reads the current file and the staged
 *    rows, keeps one row per `event_id` (earliest `received_at`, then lowest log position) and
 *    writes one file sorted by `occurred_at` to a staging name; it is fsynced and renamed over the
 *    old one, so readers see the old or the new partition, never a mix.
 * 4. Last, the progress file is replaced (tmp + fsync + rename). A crash before that replays the
 *    same bronze batches on the next run, and deduplication makes the replay harmless.
 *
 * Not covered: an `event_id` that silver already holds under one date or domain and that comes
 * again in a later run under another one (a client re-using an id with a different `occurred_at`
 * or type) is kept in both partitions. Retries of the same event always land in the same one.
 *
 * Callers hold the jobs lock (see `jobs.ts`): one silver or gold run at a time per lake.
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { DOMAINS, EVENT_TYPES, type EventType, PAYLOADS } from "../../shared/schemas.ts";
import { syncDir } from "../../shared/fs.ts";
import { makeDurable } from "../bronze.ts";
import { removeIfExists, writeFileDurably } from "../../shared/fs.ts";
import type { LakeEngine } from "../engine/engine.ts";
import {
  type BronzeFile,
  bronzeProgressFile,
  chunked,
  type Domain,
  existingPartitionFile,
  JOB_FILES,
  jobStagingDir,
  listBronzeFiles,
  MAX_FILES_PER_READ,
  partitionFile,
  SILVER_DOMAINS,
  sqlFileList,
  sqlPath,
  sqlReadParquet,
  TABLES,
} from "../layout.ts";
import { DATE } from "../../shared/time.ts";
import { type CastResult, castRow, type CastSpec, type FieldKind } from "./cast.ts";

export type { CastResult, CastSpec, FieldKind } from "./cast.ts";

// ─── Column specs ───────────────────────────────────────────────────────────────────────────────

/** One column of a silver table. */
export interface SilverColumn {
  name: string;
  /** DuckDB type of the column. */
  sql: "VARCHAR" | "INTEGER" | "BIGINT" | "DOUBLE" | "TIMESTAMPTZ";
}

/** A payload field's column. */
export interface FieldColumn extends SilverColumn {
  kind: FieldKind;
}

/** The typed columns of one domain table. */
export interface DomainSpec {
  domain: Domain;
  types: EventType[];
  /** Payload columns, in order (union over the domain's types, all nullable). */
  fields: FieldColumn[];
  /** Per type: the payload fields its schema declares (the others go to `extra`). */
  fieldsOf: Record<string, ReadonlySet<string>>;
  /** Every column of the table, in file order. */
  columns: SilverColumn[];
}

/** The columns every silver table starts with. */
export const COMMON_COLUMNS: readonly SilverColumn[] = [
  { name: "event_id", sql: "VARCHAR" },
  { name: "event_type", sql: "VARCHAR" },
  { name: "user_id", sql: "VARCHAR" },
  { name: "occurred_at", sql: "TIMESTAMPTZ" },
  { name: "received_at", sql: "TIMESTAMPTZ" },
  { name: "source", sql: "VARCHAR" },
  { name: "log_topic", sql: "VARCHAR" },
  { name: "log_partition", sql: "INTEGER" },
  { name: "log_offset", sql: "BIGINT" },
];

/** Columns of `silver/_rejects`. */
export const REJECT_COLUMNS: readonly SilverColumn[] = [
  ...COMMON_COLUMNS,
  { name: "bronze_type", sql: "VARCHAR" },
  { name: "payload", sql: "VARCHAR" },
  { name: "reason", sql: "VARCHAR" },
];

const SQL_OF: Record<FieldKind, FieldColumn["sql"]> = {
  string: "VARCHAR",
  int32: "INTEGER",
  int64: "BIGINT",
  double: "DOUBLE",
};
const COLUMN_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const INT32_MAX = 2_147_483_647;

/** What a zod field schema becomes in silver (optional/default/nullable are unwrapped). */
export function fieldKind(schema: z.ZodType, where = "field"): FieldKind {
  let s = schema as z.ZodType;
  for (;;) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap() as z.ZodType;
    else if (s instanceof z.ZodDefault) s = s.unwrap() as z.ZodType;
    else break;
  }
  if (s instanceof z.ZodString || s instanceof z.ZodEnum) return "string";
  if (s instanceof z.ZodStringFormat) return "string";
  if (s instanceof z.ZodUnion) {
    const kinds = new Set(s.options.map((o) => fieldKind(o as z.ZodType, where)));
    if (kinds.size === 1 && kinds.has("string")) return "string";
    throw new Error(`Silver cannot store the union ${where}`);
  }
  if (s instanceof z.ZodNumber) {
    if (!s.isInt) return "double";
    const lo = s.minValue ?? -Infinity, hi = s.maxValue ?? Infinity;
    return lo >= -INT32_MAX - 1 && hi <= INT32_MAX ? "int32" : "int64";
  }
  throw new Error(`Silver has no column type for ${where} (${s.def.type})`);
}

function widen(a: FieldKind, b: FieldKind, where: string): FieldKind {
  if (a === b) return a;
  if (a === "string" || b === "string") {
    throw new Error(`${where} is a string in one type and a number in another`);
  }
  if (a === "double" || b === "double") return "double";
  return "int64";
}

/** Builds a domain's spec from the payload schemas of its types. */
export function domainSpec(domain: Domain): DomainSpec {
  const types = EVENT_TYPES.filter((t) => DOMAINS[t] === domain);
  const kinds = new Map<string, FieldKind>();
  const fieldsOf: Record<string, Set<string>> = {};
  const reserved = new Set([...COMMON_COLUMNS.map((c) => c.name), "extra"]);
  for (const type of types) {
    const shape = PAYLOADS[type].shape as Record<string, z.ZodType>;
    fieldsOf[type] = new Set(Object.keys(shape));
    for (const [name, schema] of Object.entries(shape)) {
      if (!COLUMN_NAME.test(name) || reserved.has(name)) {
        throw new Error(`Payload field "${name}" of ${type} cannot be a silver column`);
      }
      const kind = fieldKind(schema, `${type}.${name}`);
      const prev = kinds.get(name);
      kinds.set(name, prev ? widen(prev, kind, `${domain}.${name}`) : kind);
    }
  }
  const fields = [...kinds].map(([name, kind]) => ({ name, kind, sql: SQL_OF[kind] }));
  return {
    domain,
    types,
    fields,
    fieldsOf,
    columns: [...COMMON_COLUMNS, ...fields, { name: "extra", sql: "VARCHAR" }],
  };
}

/** Every domain's spec. */
export const SILVER_SPECS: Record<Domain, DomainSpec> = Object.fromEntries(
  SILVER_DOMAINS.map((d) => [d, domainSpec(d)]),
) as Record<Domain, DomainSpec>;

/** The spec the worker casts with (plain data; see `silver_cast.ts`). */
export const CAST_SPEC: CastSpec = {
  domains: SILVER_DOMAINS.map((d) => ({
    name: d,
    fields: SILVER_SPECS[d].fields.map(({ name, kind, sql }) => ({ name, kind, sql })),
  })),
  types: Object.fromEntries(
    EVENT_TYPES.map((t) => [t, {
      domain: SILVER_DOMAINS.indexOf(DOMAINS[t]),
      own: [...SILVER_SPECS[DOMAINS[t]].fieldsOf[t]!],
    }]),
  ),
};

/** SQL: the domain of `s.bronze_type` (NULL for `other`). */
const DOMAIN_OF_TYPE = `CASE s.bronze_type ${
  EVENT_TYPES.map((t) => `WHEN '${t}' THEN '${DOMAINS[t]}'`).join(" ")
} END`;

/** Casts one payload as silver does (for tests and tools; runs use the worker). */
export function castPayload(type: string, eventType: string, payload: string): CastResult {
  return castRow(CAST_SPEC, type, eventType, payload);
}

// ─── Progress ───────────────────────────────────────────────────────────────────────────────────

/** `_progress/silver.json`. */
export interface SilverProgress {
  /** Completed runs that changed something. */
  run: number;
  /** Per `<topic>+<partition>`: the first bronze offset silver has not read yet. */
  watermarks: Record<string, number>;
  /** Per occurred date: the run that last rewrote one of its domain partitions (gold reads it). */
  dates: Record<string, number>;
}

/** Reads silver's progress (empty when silver never ran). */
export async function readSilverProgress(lakeDir: string): Promise<SilverProgress> {
  try {
    const p = JSON.parse(await Deno.readTextFile(join(lakeDir, JOB_FILES.silverProgress)));
    return { run: p.run ?? 0, watermarks: p.watermarks ?? {}, dates: p.dates ?? {} };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { run: 0, watermarks: {}, dates: {} };
    throw err;
  }
}

async function bronzeNextOffset(lakeDir: string, topic: string, partition: number) {
  try {
    const p = JSON.parse(await Deno.readTextFile(bronzeProgressFile(lakeDir, topic, partition)));
    return typeof p.next_offset === "number" ? p.next_offset as number : 0;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    throw err;
  }
}

// ─── The run ────────────────────────────────────────────────────────────────────────────────────

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

interface Batch {
  key: string;
  topic: string;
  partition: number;
  first: number;
  last: number;
  files: BronzeFile[];
}

const emptyDomains = () =>
  Object.fromEntries(SILVER_DOMAINS.map((d) => [d, 0])) as Record<Domain, number>;

/** The committed, unread bronze batches, in offset order per log partition. */
async function pendingBatches(lakeDir: string, progress: SilverProgress): Promise<Batch[][]> {
  const byPartition = new Map<string, Map<number, Batch>>();
  for (const f of await listBronzeFiles(lakeDir)) {
    const key = `${f.topic}+${f.partition}`;
    let batches = byPartition.get(key);
    if (!batches) byPartition.set(key, batches = new Map());
    const b = batches.get(f.first);
    if (b) {
      if (b.last !== f.last) throw new Error(`Bronze batches overlap in ${key} at ${f.first}`);
      b.files.push(f);
    } else {
      batches.set(f.first, {
        key,
        topic: f.topic,
        partition: f.partition,
        first: f.first,
        last: f.last,
        files: [f],
      });
    }
  }
  const out: Batch[][] = [];
  for (const [key, batches] of [...byPartition].sort(([a], [b]) => a < b ? -1 : 1)) {
    const any = batches.values().next().value!;
    const committed = await bronzeNextOffset(lakeDir, any.topic, any.partition);
    const from = progress.watermarks[key] ?? 0;
    const list = [...batches.values()]
      .filter((b) => b.first >= from && b.last < committed)
      .sort((a, b) => a.first - b.first);
    if (list.length > 0) out.push(list);
  }
  return out;
}

/** Takes whole batches, round-robin over log partitions, until the budget is spent. */
function takeBudget(partitions: Batch[][], maxRows: number, maxFiles: number) {
  const taken: Batch[] = [];
  let rows = 0, files = 0;
  const cursors = partitions.map(() => 0);
  for (let progress = true; progress;) {
    progress = false;
    for (let p = 0; p < partitions.length; p++) {
      const b = partitions[p]![cursors[p]!];
      if (!b) continue;
      const span = b.last - b.first + 1;
      if (taken.length > 0 && (rows + span > maxRows || files + b.files.length > maxFiles)) {
        return { taken, more: true };
      }
      taken.push(b);
      rows += span;
      files += b.files.length;
      cursors[p]!++;
      progress = true;
    }
  }
  return { taken, more: false };
}

/** Runs silver once. See the module documentation. */
export async function runSilver(
  engine: LakeEngine,
  lakeDir: string,
  options: SilverOptions = {},
): Promise<SilverStats> {
  const started = performance.now();
  const maxRows = options.maxRowsPerRun ?? 2_000_000;
  const maxFiles = options.maxFilesPerRun ?? 8_000;
  const readRows = options.readRows ?? 50_000;
  const maxFilesPerRead = options.maxFilesPerRead ?? MAX_FILES_PER_READ;
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
  const progress = await readSilverProgress(lakeDir);
  const { taken, more } = takeBudget(await pendingBatches(lakeDir, progress), maxRows, maxFiles);
  stats.more = more;
  if (taken.length === 0) {
    stats.duration_ms = Math.round(performance.now() - started);
    return stats;
  }

  // Leftovers of a crashed run go; this run stages under a fresh name of its own.
  const stagingRoot = jobStagingDir(lakeDir, "silver");
  await removeIfExists(stagingRoot);
  const staging = join(stagingRoot, crypto.randomUUID());
  for (const t of [...SILVER_DOMAINS, "_rejects"]) {
    await Deno.mkdir(join(staging, "in", t), { recursive: true });
  }
  try {
    // 1–2. Read, cast (in the worker) and stage per table and occurred date.
    const common = COMMON_COLUMNS.map((c) => `s."${c.name}"`).join(", ");
    // The UTC date of occurred_at, without ICU (this build has no time zone functions).
    const day = `CAST(CAST(CAST(s.occurred_at AS TIMESTAMP) AS DATE) AS VARCHAR)`;
    const odt = `${day} AS odt`;
    let seq = 0;
    const keyFiles: string[] = [];
    await Deno.mkdir(join(staging, "keys"), { recursive: true });
    for (const group of readGroups(taken, readRows, maxFilesPerRead)) {
      // The bronze type comes from each file's `type=` directory (a deep UNION ALL of one read
      // per type overflows duckdb-wasm's stack).
      const [loaded] = await engine.exec<{ Count: bigint }>(
        `CREATE OR REPLACE TEMP TABLE silver_src AS
         SELECT row_number() OVER () AS rid, event_id, event_type, user_id, occurred_at,
                received_at, source, payload, log_topic, log_partition, log_offset,
                regexp_extract(filename, '/type=([a-z][a-z0-9_]*)/[^/]+$', 1) AS bronze_type
           FROM read_parquet(${sqlFileList(group.map((f) => f.path))}, union_by_name = true,
                             hive_partitioning = false, filename = true)`,
      );
      stats.rows_in += Number(loaded?.Count ?? 0);
      stats.files_read += group.length;
      const counts = await engine.castJson(
        "SELECT rid, bronze_type AS type, event_type, payload FROM silver_src",
        CAST_SPEC,
        "silver_cast",
      );
      const n = ++seq;
      for (const d of SILVER_DOMAINS) {
        if (!counts[`silver_cast_${d}`]) continue;
        const fields = SILVER_SPECS[d].fields.map((f) => `c."${f.name}"`).join(", ");
        await engine.exec(
          `COPY (SELECT ${common}, ${fields}, c.extra, ${odt}
                   FROM silver_src s JOIN "silver_cast_${d}" c USING (rid))
             TO ${sqlPath(join(staging, "in", d, String(n)))}
             (FORMAT PARQUET, PARTITION_BY (odt))`,
        );
      }
      const rejected = Boolean(counts["silver_cast__rejects"]);
      if (rejected) {
        await engine.exec(
          `COPY (SELECT ${common}, s.bronze_type, s.payload, c.reason, ${odt}
                   FROM silver_src s JOIN "silver_cast__rejects" c USING (rid))
             TO ${sqlPath(join(staging, "in", "_rejects", String(n)))}
             (FORMAT PARQUET, PARTITION_BY (odt))`,
        );
      }
      // The keys of this step's rows and their partition, for deduplication across partitions.
      await engine.exec(
        `COPY (SELECT s.event_id, s.received_at, s.log_topic, s.log_partition, s.log_offset,
                      ${DOMAIN_OF_TYPE} || '/' || ${day} AS g
                 FROM silver_src s
                 ${rejected ? `WHERE s.rid NOT IN (SELECT rid FROM "silver_cast__rejects")` : ""})
           TO ${sqlPath(join(staging, "keys", `${n}.parquet`))} (FORMAT PARQUET)`,
      );
      keyFiles.push(join(staging, "keys", `${n}.parquet`));
    }
    await engine.exec(
      `DROP TABLE IF EXISTS silver_src; ${
        [...SILVER_DOMAINS, "_rejects"].map((d) => `DROP TABLE IF EXISTS "silver_cast_${d}"`)
          .join("; ")
      }`,
    );
    stats.batches_read = taken.length;
    const staged = await listStaged(join(staging, "in"));

    // 3. Deduplicate across partitions of this run, then merge each partition.
    const domainKeys = [...staged.keys()].filter((k) => !k.startsWith("_rejects/"));
    let losers = false;
    if (domainKeys.length > 1) {
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
      losers = Number(row?.n ?? 0) > 0;
    }

    const dates = new Set<string>();
    for (const key of [...staged.keys()].sort()) {
      const [table, dt] = key.split("/") as [string, string];
      const rejects = table === "_rejects";
      const spec = rejects ? undefined : SILVER_SPECS[table as Domain];
      const tableDir = rejects ? TABLES.silverRejects : TABLES.silver(table as Domain);
      const columns = spec ? spec.columns : REJECT_COLUMNS;
      const old = await existingPartitionFile(lakeDir, tableDir, dt);
      const before = old ? await countRows(engine, old) : 0;
      const out = join(staging, "out", `${table}-${dt}.parquet`);
      await Deno.mkdir(join(staging, "out"), { recursive: true });
      const after = await mergePartition(engine, {
        columns,
        old,
        staged: staged.get(key)!,
        out,
        excludeLosers: losers && !rejects,
        maxFiles: maxFilesPerRead,
      });
      if (after === 0 && !old) {
        // Every staged row lost to a copy under another date or domain: no partition to create.
        await removeIfExists(out);
        continue;
      }
      await replaceFile(out, partitionFile(lakeDir, tableDir, dt));
      stats.partitions_rewritten++;
      if (spec) {
        stats.rows_new[spec.domain] += after - before;
        stats.rows_written[spec.domain] += after;
        dates.add(dt);
      } else {
        stats.rejects_new += after - before;
      }
    }
    const gained = Object.values(stats.rows_new).reduce((a, b) => a + b, 0) + stats.rejects_new;
    stats.duplicates = stats.rows_in - gained;
    stats.dates = [...dates].sort();
    if (losers) await engine.exec("DROP TABLE IF EXISTS silver_losers");

    // 4. Progress last.
    await options.beforeProgress?.();
    const next: SilverProgress = {
      run: progress.run + 1,
      watermarks: { ...progress.watermarks },
      dates: { ...progress.dates },
    };
    for (const b of taken) {
      next.watermarks[b.key] = Math.max(next.watermarks[b.key] ?? 0, b.last + 1);
    }
    for (const dt of dates) next.dates[dt] = next.run;
    await Deno.mkdir(join(lakeDir, "_progress"), { recursive: true });
    await writeFileDurably(join(lakeDir, JOB_FILES.silverProgress), JSON.stringify(next));
  } finally {
    await removeIfExists(stagingRoot);
  }
  stats.duration_ms = Math.round(performance.now() - started);
  return stats;
}

/**
 * Groups the taken batches' files into read steps of about `rows` rows (estimated from offset
 * ranges) and at most `files` files each.
 */
function* readGroups(batches: Batch[], rows: number, files: number): Generator<BronzeFile[]> {
  let group: BronzeFile[] = [], span = 0;
  for (const b of batches) {
    const perFile = (b.last - b.first + 1) / b.files.length;
    for (const f of b.files) {
      group.push(f);
      span += perFile;
      if (span >= rows || group.length >= files) {
        yield group;
        group = [];
        span = 0;
      }
    }
  }
  if (group.length > 0) yield group;
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

/**
 * Writes the old partition file plus the staged rows to `out` with one row per `event_id`
 * (earliest `received_at`, then lowest log position), sorted by `occurred_at`, in the column
 * order and types of `columns` (columns an old file lacks read as NULL). Returns the row count.
 */
async function mergePartition(engine: LakeEngine, m: {
  columns: readonly SilverColumn[];
  old: string | undefined;
  staged: string[];
  out: string;
  excludeLosers: boolean;
  maxFiles: number;
}): Promise<number> {
  const names = m.columns.map((c) => `"${c.name}"`).join(", ");
  const cast = m.columns.map((c) => `CAST(s."${c.name}" AS ${c.sql}) AS "${c.name}"`).join(", ");
  let source: string;
  if (m.staged.length + 1 <= m.maxFiles) {
    source = sqlReadParquet([...(m.old ? [m.old] : []), ...m.staged]);
  } else {
    // Too many files for one scan: gather them in a temporary table first.
    await createTempFrom(
      engine,
      "silver_merge_in",
      m.staged,
      (src) => `SELECT ${cast} FROM ${src} AS s`,
      m.maxFiles,
    );
    if (m.old) {
      const have = await parquetColumns(engine, m.old);
      const cols = m.columns.map((c) =>
        have.has(c.name)
          ? `CAST(s."${c.name}" AS ${c.sql}) AS "${c.name}"`
          : `CAST(NULL AS ${c.sql}) AS "${c.name}"`
      ).join(", ");
      await engine.exec(
        `INSERT INTO silver_merge_in SELECT ${cols} FROM ${sqlReadParquet([m.old])} AS s`,
      );
    }
    source = "silver_merge_in";
  }
  const where = m.excludeLosers
    ? `WHERE NOT EXISTS (SELECT 1 FROM silver_losers l WHERE l.log_topic = s.log_topic
         AND l.log_partition = s.log_partition AND l.log_offset = s.log_offset)`
    : "";
  const [row] = await engine.exec<{ Count: bigint }>(
    `COPY (
       SELECT ${names} FROM (
         SELECT ${cast}, row_number() OVER (PARTITION BY s.event_id
                ORDER BY s.received_at, s.log_topic, s.log_partition, s.log_offset) AS _rn
           FROM ${source} AS s
           ${where}
       ) WHERE _rn = 1
       ORDER BY occurred_at, event_id
     ) TO ${sqlPath(m.out)} (FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE 122880)`,
  );
  if (source === "silver_merge_in") await engine.exec("DROP TABLE silver_merge_in");
  return Number(row?.Count ?? 0);
}

/** Makes `src` durable and renames it over `dest` (creating the partition directory). */
export async function replaceFile(src: string, dest: string): Promise<void> {
  await makeDurable(src);
  const dir = join(dest, "..");
  try {
    await Deno.stat(dir);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    await Deno.mkdir(dir, { recursive: true });
    await syncDir(join(dir, ".."));
  }
  await Deno.rename(src, dest);
  await syncDir(dir);
}
