/**
 * The only module that imports DuckDB-wasm (and the Arrow version it pairs with). It runs in a Web
 * Worker: the node-blocking bundle runs queries on the calling thread, and a Parquet write of tens of
 * thousands of rows takes long enough to stall every HTTP request if it ran on the main thread.
 *
 * Version 1.28.0 is pinned on purpose: it is the last release with Parquet built in; 1.29 and later
 * download the extension at first use and hang offline (see docs/dependencies.md).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { statSync } from "node:fs";
import { setPriority } from "node:os";
import { fileURLToPath } from "node:url";
import * as duckdb from "@duckdb/duckdb-wasm/dist/duckdb-node-blocking.cjs";
import * as arrow from "apache-arrow";
import type {
  Column,
  ColumnarResult,
  EngineRequest,
  EngineResponse,
  ParquetOut,
} from "./protocol.ts";
import { castRow } from "../silver/cast.ts";
import { readOnlyRuntime } from "./read_only_runtime.ts";
import { fieldColumn } from "./columns.ts";

/**
 * A path, not a URL: DuckDB reads it with `fs.readFileSync`. In a `deno compile` binary it lies in
 * the embedded file system (see the `compile` task), which `node:fs` reads like any other.
 * `fileURLToPath`, unlike `URL.pathname`, decodes `%20` and friends in a checkout's path.
 */
const WASM = fileURLToPath(import.meta.resolve("@duckdb/duckdb-wasm/dist/duckdb-eh.wasm"));

async function open(): Promise<{ db: duckdb.DuckDBBindings; conn: duckdb.DuckDBConnection }> {
  const bundles = {
    mvp: { mainModule: WASM, mainWorker: "" },
    eh: { mainModule: WASM, mainWorker: "" },
  };
  // Reads never create files (see read_only_runtime.ts).
  const isFile = (path: string) => {
    try {
      return statSync(path).isFile();
    } catch {
      return false;
    }
  };
  const runtime = readOnlyRuntime(duckdb.NODE_RUNTIME, duckdb.failWith as never, isFile);
  const db = await duckdb.createDuckDB(bundles, new duckdb.VoidLogger(), runtime);
  await db.instantiate();
  db.open({});
  const conn = db.connect();
  return { db, conn };
}

const ready = open();

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The nulls of a column of `n` values: an Arrow validity bitmap (LSB first, 1 = valid). */
class Validity {
  #bitmap: Uint8Array | undefined;
  #nulls = 0;
  constructor(readonly n: number) {}

  /** Marks value `i` as null (the bitmap is made on the first null). */
  setNull(i: number): void {
    this.#bitmap ??= new Uint8Array((this.n + 7) >> 3).fill(0xff);
    this.#bitmap[i >> 3]! &= ~(1 << (i & 7));
    this.#nulls++;
  }

  /** The `nullCount` and `nullBitmap` fields of `arrow.makeData`. */
  get data(): { nullCount: number; nullBitmap?: Uint8Array } {
    return { nullCount: this.#nulls, ...(this.#bitmap ? { nullBitmap: this.#bitmap } : {}) };
  }
}

/**
 * A Utf8 vector built by hand: one `encodeInto` per string into a growing buffer. Arrow's own
 * builder (`vectorFromArray`) costs ~8 µs per string, which made Parquet writes CPU-bound.
 */
function utf8Vector(values: readonly (string | null | undefined)[]): arrow.Vector {
  const n = values.length;
  const offsets = new Int32Array(n + 1);
  let size = 0;
  for (let i = 0; i < n; i++) size += values[i]?.length ?? 0;
  let buf = new Uint8Array(Math.max(64, Math.ceil(size * 1.1)));
  let pos = 0;
  const validity = new Validity(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) validity.setNull(i);
    else if (v.length > 0) {
      if (pos + v.length * 3 > buf.length) {
        const next = new Uint8Array(Math.max(buf.length * 2, pos + v.length * 3));
        next.set(buf.subarray(0, pos));
        buf = next;
      }
      pos += encoder.encodeInto(v, buf.subarray(pos)).written;
    }
    offsets[i + 1] = pos;
  }
  return arrow.makeVector(arrow.makeData({
    type: new arrow.Utf8(),
    length: n,
    ...validity.data,
    valueOffsets: offsets,
    data: buf.subarray(0, pos),
  }));
}

/** A nullable numeric vector: values in a typed array, nulls in the bitmap. */
function nullableVector<T extends arrow.Float64 | arrow.Int32 | arrow.Int64>(
  values: readonly (number | null)[],
  type: T,
): arrow.Vector {
  const n = values.length;
  const data = type instanceof arrow.Float64
    ? new Float64Array(n)
    : type instanceof arrow.Int32
    ? new Int32Array(n)
    : new BigInt64Array(n);
  const validity = new Validity(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) validity.setNull(i);
    else if (data instanceof BigInt64Array) data[i] = BigInt(v);
    else data[i] = v;
  }
  return arrow.makeVector(arrow.makeData({ type, length: n, ...validity.data, data } as never));
}

function toVector(col: Column): arrow.Vector {
  switch (col.kind) {
    case "utf8":
      return utf8Vector(col.values);
    case "timestamp_us": {
      const data = BigInt64Array.from(col.values, (v) => BigInt(Math.round(v)));
      return arrow.makeVector(
        { type: new arrow.TimestampMicrosecond("UTC"), data, length: data.length } as never,
      );
    }
    case "int64": {
      const data = BigInt64Array.from(col.values, (v) => BigInt(v));
      return arrow.makeVector(data);
    }
    case "int32":
      return arrow.makeVector(Int32Array.from(col.values));
    case "float64":
      return arrow.makeVector(Float64Array.from(col.values));
    case "float64_nullable":
      return nullableVector(col.values, new arrow.Float64());
    case "int32_nullable":
      return nullableVector(col.values, new arrow.Int32());
    case "int64_nullable":
      return nullableVector(col.values, new arrow.Int64());
    case "bool":
      return arrow.vectorFromArray(col.values, new arrow.Bool());
  }
}

/** The strings of a Utf8 vector, decoded chunk by chunk (Arrow's iterator is ~10x slower). */
function decodeUtf8(vector: arrow.Vector): (string | null)[] {
  const out: (string | null)[] = new Array(vector.length);
  let k = 0;
  for (const d of vector.data) {
    const offsets = d.valueOffsets as Int32Array | undefined;
    const bytes = d.values as Uint8Array | undefined;
    if (!offsets || !bytes || d.offset !== 0) {
      for (let i = 0; i < d.length; i++, k++) out[k] = vector.get(k) as string | null;
      continue;
    }
    const bitmap = d.nullCount > 0 ? d.nullBitmap : undefined;
    for (let i = 0; i < d.length; i++, k++) {
      out[k] = bitmap && !(bitmap[i >> 3]! & (1 << (i & 7)))
        ? null
        : decoder.decode(bytes.subarray(offsets[i]!, offsets[i + 1]!));
    }
  }
  return out;
}

/** An Arrow table as plain column arrays (see {@link ColumnarResult}). */
function toColumnar(table: arrow.Table): ColumnarResult {
  const columns: ColumnarResult["columns"] = {};
  for (const field of table.schema.fields) {
    const vector = table.getChild(field.name)!;
    if (arrow.DataType.isUtf8(field.type)) {
      columns[field.name] = decodeUtf8(vector);
      continue;
    }
    const values = vector.toArray() as unknown;
    if (vector.nullCount > 0) {
      columns[field.name] = Array.from(vector, (v) => typeof v === "bigint" ? Number(v) : v);
    } else if (values instanceof BigInt64Array) {
      columns[field.name] = Float64Array.from(values, Number);
    } else if (values instanceof Float64Array || values instanceof Int32Array) {
      columns[field.name] = values;
    } else {
      columns[field.name] = Array.from(vector, (v) => typeof v === "bigint" ? Number(v) : v);
    }
  }
  return { rows: table.numRows, columns };
}

/** Loads columns into a new table `name` (replacing one of that name). */
function loadTable(conn: duckdb.DuckDBConnection, name: string, columns: Record<string, Column>) {
  const table = new arrow.Table(
    Object.fromEntries(Object.entries(columns).map(([k, c]) => [k, toVector(c)])),
  );
  conn.query(`DROP TABLE IF EXISTS "${name}"`);
  conn.insertArrowFromIPCStream(arrow.tableToIPC(table, "stream"), {
    name,
    schema: "main",
    create: true,
  });
  return table.numRows;
}

/** The `castJson` operation: see {@link EngineRequest}. */
function castJson(
  conn: duckdb.DuckDBConnection,
  req: Extract<EngineRequest, { op: "castJson" }>,
): Record<string, number> {
  const { spec, prefix } = req;
  const names = [...spec.domains.map((d) => `${prefix}_${d.name}`), `${prefix}__rejects`];
  for (const n of names) conn.query(`DROP TABLE IF EXISTS "${n}"`);
  const table = conn.query(req.sql);
  const ridVec = table.getChild("rid")!.toArray() as unknown;
  const rid = ridVec instanceof BigInt64Array
    ? Float64Array.from(ridVec, Number)
    : Float64Array.from(ridVec as ArrayLike<number>);
  const types = decodeUtf8(table.getChild("type")!);
  const eventTypes = decodeUtf8(table.getChild("event_type")!);
  const payloads = decodeUtf8(table.getChild("payload")!);

  const out = spec.domains.map((d) => ({
    rid: [] as number[],
    fields: d.fields.map(() => [] as (string | number | null)[]),
    extra: [] as (string | null)[],
  }));
  const rejects = { rid: [] as number[], reason: [] as string[] };
  for (let i = 0; i < table.numRows; i++) {
    const r = castRow(spec, types[i] ?? "", eventTypes[i] ?? "", payloads[i] ?? "");
    if (r.ok) {
      const o = out[r.domain]!;
      o.rid.push(rid[i]!);
      for (let f = 0; f < r.values.length; f++) o.fields[f]!.push(r.values[f]!);
      o.extra.push(r.extra);
    } else {
      rejects.rid.push(rid[i]!);
      rejects.reason.push(r.reason);
    }
  }
  const counts: Record<string, number> = {};
  spec.domains.forEach((d, i) => {
    const o = out[i]!;
    if (o.rid.length === 0) return;
    const columns: Record<string, Column> = {
      rid: { kind: "int64", values: Float64Array.from(o.rid) },
    };
    d.fields.forEach((f, j) => columns[f.name] = fieldColumn(f.kind, o.fields[j]!));
    columns.extra = { kind: "utf8", values: o.extra };
    counts[`${prefix}_${d.name}`] = loadTable(conn, `${prefix}_${d.name}`, columns);
  });
  if (rejects.rid.length > 0) {
    counts[`${prefix}__rejects`] = loadTable(conn, `${prefix}__rejects`, {
      rid: { kind: "int64", values: Float64Array.from(rejects.rid) },
      reason: { kind: "utf8", values: rejects.reason },
    });
  }
  return counts;
}

/** Quotes a string as an SQL literal. Only ever called on paths the lake module built itself. */
function literal(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

let tableSeq = 0;

/**
 * Runs `COPY (<sql>) TO <buffer> (FORMAT PARQUET, <options>)` and returns the file's bytes and row
 * count. DuckDB writes into a buffer of its own, never a path: the lake's store decides where the
 * bytes go (a local file, an object store). It also keeps DuckDB-wasm 1.28 away from files it
 * cannot open: a COPY to such a file never returns (it prints "FAIL WITH" and hangs until the
 * engine's timeout, stalling every write queued behind it).
 */
function copyToBuffer(
  db: duckdb.DuckDBBindings,
  conn: duckdb.DuckDBConnection,
  sql: string,
  options: string,
): ParquetOut {
  const out = `copy_${++tableSeq}.parquet`;
  db.registerFileBuffer(out, new Uint8Array());
  try {
    const result = conn.query(
      `COPY (${sql}) TO ${literal(out)} (FORMAT PARQUET${options ? `, ${options}` : ""})`,
    );
    const count = result.numRows > 0 ? result.getChildAt(0)?.get(0) : 0;
    const bytes = db.copyFileToBuffer(out);
    // The footer's per-row-group statistics, as the table log records them (see stats.ts).
    db.registerFileBuffer(out, bytes.slice());
    const stats = conn.query(
      `SELECT path_in_schema AS "column", stats_min_value AS min, stats_max_value AS max,
              stats_null_count AS nulls FROM parquet_metadata(${literal(out)})`,
    ).toArray().map((r) => {
      const o = r.toJSON();
      return {
        column: String(o.column),
        min: o.min ?? null,
        max: o.max ?? null,
        nulls: o.nulls === null || o.nulls === undefined ? null : Number(o.nulls),
      };
    });
    return { rows: Number(count ?? 0), bytes, stats };
  } finally {
    db.dropFile(out);
  }
}

async function handle(req: EngineRequest): Promise<unknown> {
  const { db, conn } = await ready;
  try {
    return run(db, conn, req);
  } finally {
    // duckdb-wasm keeps every file it opened registered, with its descriptor open: a file renamed
    // over (silver and gold replace partitions that way) would be read from the old inode for
    // ever, and a name it wrote once cannot be a partitioned COPY target again. Forget them all
    // after each call; the next call opens what is on disk now.
    db.dropFiles();
  }
}

/**
 * The engine's settings, before any other call: the worker thread's priority (this thread only:
 * pid 0 is the calling thread on Linux) and DuckDB's memory limit.
 */
async function configure(niceness: number, memoryLimitMb: number): Promise<void> {
  if (niceness > 0) {
    try {
      setPriority(niceness);
    } catch {
      // No --allow-sys, or not Linux: the worker runs at the process's priority.
    }
  }
  const { conn } = await ready;
  conn.query(`SET memory_limit = '${Math.trunc(memoryLimitMb)}MB'`);
}

function run(
  db: duckdb.DuckDBBindings,
  conn: duckdb.DuckDBConnection,
  req: EngineRequest,
): unknown {
  switch (req.op) {
    case "toParquet": {
      const name = `load_${++tableSeq}`;
      loadTable(conn, name, req.columns);
      try {
        return copyToBuffer(db, conn, `SELECT * FROM "${name}"`, "COMPRESSION ZSTD");
      } finally {
        conn.query(`DROP TABLE IF EXISTS "${name}"`);
      }
    }
    case "copyParquet":
      return copyToBuffer(db, conn, req.sql, req.options);
    case "load":
      return loadTable(conn, req.name, req.columns);
    case "query": {
      const stmt = conn.prepare(req.sql);
      try {
        const result = stmt.query(...req.params);
        return result.toArray().map((row) => row.toJSON());
      } finally {
        stmt.close();
      }
    }
    case "queryColumns": {
      const stmt = conn.prepare(req.sql);
      try {
        return toColumnar(stmt.query(...req.params));
      } finally {
        stmt.close();
      }
    }
    case "exec":
      return conn.query(req.sql).toArray().map((row) => row.toJSON());
    case "castJson":
      return castJson(conn, req);
  }
}

/**
 * This worker's own memory, in bytes: DuckDB's WebAssembly memory (it never shrinks) and this
 * thread's JavaScript heap (the results it converts), or undefined if DuckDB failed to open.
 */
async function workerBytes(): Promise<number | undefined> {
  try {
    const { db } = await ready;
    // The bindings' class has the Emscripten module; its interface type does not say so.
    const wasm = (db as unknown as { mod: { HEAPU8: Uint8Array } }).mod.HEAPU8.buffer.byteLength;
    return wasm + Deno.memoryUsage().heapTotal;
  } catch {
    return undefined;
  }
}

/** Whether replies carry the worker's memory (`configure` says; only recycling engines ask). */
let reportMemory = false;

self.onmessage = async (e: MessageEvent<EngineRequest>) => {
  const req = e.data;
  if (req.op === "configure") {
    reportMemory = req.reportMemory;
    // Never answered: a DuckDB that failed to open fails the next call with its own error.
    return await configure(req.niceness, req.memoryLimitMb).catch(() => {});
  }
  let reply: EngineResponse;
  try {
    reply = { id: req.id, ok: true, value: await handle(req) };
  } catch (err) {
    // A trap inside the WebAssembly module (out-of-bounds access, stack overflow, …) leaves
    // DuckDB's memory in an unknown state: the main thread replaces this worker.
    const fatal = err instanceof WebAssembly.RuntimeError;
    reply = {
      id: req.id,
      ok: false,
      error: err instanceof Error ? err.message : String(err),
      ...(fatal ? { fatal } : {}),
    };
  }
  const memory = reportMemory ? await workerBytes() : undefined;
  if (memory !== undefined) reply.memory = memory;
  // Parquet bytes move to the main thread instead of being copied.
  const value = reply.ok ? reply.value : undefined;
  const bytes = value instanceof Uint8Array
    ? value
    : (value as { bytes?: unknown } | undefined)?.bytes;
  self.postMessage(reply, bytes instanceof Uint8Array ? [bytes.buffer as ArrayBuffer] : []);
};
