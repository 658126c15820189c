/**
 * The lake's SQL engine as seen from the main thread: DuckDB-wasm in a Web Worker behind a few
 * calls. Calls are queued by the worker and run one at a time; each has a timeout, and a worker
 * that dies, hangs or traps inside WebAssembly is replaced on the next call. After each call the
 * worker forgets the files DuckDB opened, so a file replaced on disk is read anew.
 *
 * @module
 */
import type {
  Column,
  ColumnarResult,
  EngineRequest,
  EngineResponse,
  ParquetOut,
} from "./protocol.ts";
import type { CastSpec } from "../silver/cast.ts";

export type { Column, ColumnarResult, ParquetOut, RowGroupStat } from "./protocol.ts";

/** A parameter bound to a query; values are never spliced into SQL text. */
export type Param = string | number | boolean | null;

/** Options of {@link LakeEngine}. */
export interface LakeEngineOptions {
  /** Longest one call may take before it is failed. @default 120000 */
  timeoutMs?: number;
  /**
   * Replace the worker, between calls, once it has written this many Parquet rows. DuckDB-wasm
   * keeps the memory of every Arrow insert (about 0.5 GB per million bronze rows) and WebAssembly
   * memory never shrinks: without a recycle a long-running writer grows without bound.
   * `0` = never. @default 0
   */
  recycleAfterRows?: number;
  /**
   * Linux nice value of the worker thread (the rest of the process keeps its own): a job on an
   * engine at 10 yields the cores to ingest and queries and runs at full speed when they idle.
   * Needs `--allow-sys`; without it the worker runs at the process's priority. @default 0
   */
  niceness?: number;
  /**
   * DuckDB's `memory_limit` in MiB: its buffers (Parquet pages and metadata it keeps) stay under
   * it, and WebAssembly memory, which never shrinks, grows less. A query needing more fails.
   * @default 1024
   */
  memoryLimitMb?: number;
  /**
   * Replace the worker once its memory (DuckDB's WebAssembly memory plus the worker's JavaScript
   * heap) has reached this many MiB: the calls it holds finish on it, later calls go to a fresh
   * worker (started at once), and it is terminated when its last call is answered. DuckDB's
   * `memory_limit` bounds its buffers, not the results the worker converts, and WebAssembly memory
   * never shrinks: without a recycle a long-running query engine keeps its high-water mark.
   * `0` = never. @default 0
   */
  recycleAboveMb?: number;
}

type Pending = {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  worker: Worker;
};
type Request = EngineRequest extends infer R ? R extends { id: number } ? Omit<R, "id"> : never
  : never;

/** DuckDB in a worker. */
export class LakeEngine {
  #worker: Worker | undefined;
  #seq = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #timeoutMs: number;
  readonly #recycleAfterRows: number;
  readonly #niceness: number;
  readonly #memoryLimitMb: number;
  readonly #recycleAboveBytes: number;
  /** Workers replaced for their memory that still answer calls sent to them before. */
  readonly #retired = new Set<Worker>();
  #rowsWritten = 0;
  #closed = false;
  /**
   * Workers replaced because they had written `recycleAfterRows` rows or reached
   * `recycleAboveMb`.
   */
  recycled = 0;

  constructor(options: LakeEngineOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 120_000;
    this.#recycleAfterRows = options.recycleAfterRows ?? 0;
    this.#niceness = options.niceness ?? 0;
    this.#memoryLimitMb = options.memoryLimitMb ?? 1024;
    this.#recycleAboveBytes = (options.recycleAboveMb ?? 0) * 1024 * 1024;
  }

  /**
   * The bytes of one Parquet file (ZSTD) holding `columns`. The bytes are checked for the `PAR1`
   * magic at both ends: DuckDB-wasm has been seen to report success for a file holding other bytes
   * once its memory ran high; such a write fails ({@link CorruptParquetError}) and the worker that
   * produced it is replaced before the retry.
   */
  async parquet(columns: Record<string, Column>): Promise<ParquetOut> {
    const out = await this.#call({ op: "toParquet", columns }) as ParquetOut;
    this.#checked(out.bytes);
    this.#rowsWritten += out.rows;
    if (
      this.#recycleAfterRows > 0 && this.#rowsWritten >= this.#recycleAfterRows &&
      this.#pending.size === 0 && this.#worker
    ) {
      // Nothing in flight: the next call starts a fresh worker with fresh memory.
      this.#worker.terminate();
      this.#worker = undefined;
      this.recycled++;
    }
    return out;
  }

  /** {@link parquet}, written to a local file (tools and tests); resolves with the row count. */
  async writeParquet(columns: Record<string, Column>, path: string): Promise<number> {
    const out = await this.parquet(columns);
    await Deno.writeFile(path, out.bytes);
    return out.rows;
  }

  /**
   * `COPY (<sql>) TO … (FORMAT PARQUET, <options>)` into memory: the rows and bytes of the file,
   * checked like {@link parquet}. `sql` is lake-built SQL only (see {@link exec}).
   */
  async copyParquet(sql: string, options = ""): Promise<ParquetOut> {
    const out = await this.#call({ op: "copyParquet", sql, options }) as ParquetOut;
    this.#checked(out.bytes);
    return out;
  }

  /**
   * Loads columns into table `name` of the engine's database (replacing one of that name), for
   * SQL that follows; resolves with the row count. `name` is lake-built, never from a request.
   */
  async load(name: string, columns: Record<string, Column>): Promise<number> {
    return await this.#call({ op: "load", name, columns }) as number;
  }

  /** Runs one prepared statement with bound parameters and returns its rows as plain objects. */
  async query<T = Record<string, unknown>>(sql: string, params: Param[] = []): Promise<T[]> {
    return await this.#call({ op: "query", sql, params }) as T[];
  }

  /**
   * Like {@link query}, but answers column arrays (see {@link ColumnarResult}): much cheaper than
   * row objects for large results.
   */
  async queryColumns(sql: string, params: Param[] = []): Promise<ColumnarResult> {
    return await this.#call({ op: "queryColumns", sql, params }) as ColumnarResult;
  }

  /**
   * Runs statements without parameters (`COPY (SELECT …) TO '…'`, temporary tables, several
   * statements separated by `;`) and returns the rows of the last one. Only for SQL the lake code
   * built itself: literals in it must come from lake listings (see `layout.ts`), never requests.
   */
  async exec<T = Record<string, unknown>>(sql: string): Promise<T[]> {
    return await this.#call({ op: "exec", sql }) as T[];
  }

  /**
   * Parses and casts JSON payloads inside the worker into per-domain tables (silver's cast; see
   * `castJson` in `engine_protocol.ts`). Resolves with the row count of each table created.
   */
  async castJson(sql: string, spec: CastSpec, prefix: string): Promise<Record<string, number>> {
    return await this.#call({ op: "castJson", sql, spec, prefix }) as Record<string, number>;
  }

  /**
   * Terminates the worker now (calls in flight fail); the next call starts a fresh one.
   * WebAssembly memory never shrinks, so a long-lived process recycles an engine after a big job
   * to give the memory back.
   */
  recycle(): void {
    if (this.#closed) return;
    this.#restart(new Error("The lake engine was recycled"));
  }

  /** Terminates the worker. Safe to call twice. */
  close(): void {
    this.#closed = true;
    this.#fail(new Error("The lake engine is closed"));
    this.#worker?.terminate();
    this.#worker = undefined;
    this.#terminateRetired();
  }

  #checked(bytes: Uint8Array): Uint8Array {
    const why = parquetProblem(bytes);
    if (why) {
      this.recycle();
      throw new CorruptParquetError(why);
    }
    return bytes;
  }

  #call(req: Request): Promise<unknown> {
    if (this.#closed) return Promise.reject(new Error("The lake engine is closed"));
    const worker = this.#worker ??= this.#spawn();
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`Lake engine call "${req.op}" timed out after ${this.#timeoutMs} ms`));
        // A stuck worker would delay every later call: replace it.
        this.#restart(new Error("The lake engine was restarted after a timeout"));
      }, this.#timeoutMs);
      this.#pending.set(id, { resolve, reject, timer, worker });
      worker.postMessage({ ...req, id } as EngineRequest);
    });
  }

  #spawn(): Worker {
    this.#rowsWritten = 0; // counted per worker: a fresh one starts with fresh memory
    const worker = new Worker(new URL("./duckdb_worker.ts", import.meta.url), { type: "module" });
    worker.postMessage(
      {
        id: 0,
        op: "configure",
        niceness: this.#niceness,
        memoryLimitMb: this.#memoryLimitMb,
        reportMemory: this.#recycleAboveBytes > 0,
      } satisfies EngineRequest,
    );
    worker.onmessage = (e: MessageEvent<EngineResponse>) => {
      const p = this.#pending.get(e.data.id);
      if (!p) return;
      this.#pending.delete(e.data.id);
      clearTimeout(p.timer);
      this.#retireAbove(worker, e.data.memory);
      if (e.data.ok) p.resolve(e.data.value);
      else {
        p.reject(new Error(e.data.error));
        if (e.data.fatal && this.#worker === worker) {
          this.#restart(new Error(`The lake engine was restarted after a crash: ${e.data.error}`));
        }
      }
    };
    worker.onerror = (e) => {
      e.preventDefault();
      this.#restart(new Error(`The lake engine failed: ${e.message}`));
    };
    return worker;
  }

  /**
   * Past `recycleAboveMb`, `worker` takes no new calls (a fresh one takes them); it is terminated
   * once it has answered every call it holds, so no call fails for the recycle.
   */
  #retireAbove(worker: Worker, memory: number | undefined): void {
    if (
      this.#recycleAboveBytes > 0 && memory !== undefined && memory >= this.#recycleAboveBytes &&
      this.#worker === worker
    ) {
      this.#retired.add(worker);
      this.recycled++;
      // Started now, its WebAssembly compiles while the old worker finishes.
      this.#worker = this.#spawn();
    }
    if (!this.#retired.has(worker)) return;
    for (const p of this.#pending.values()) if (p.worker === worker) return;
    worker.terminate();
    this.#retired.delete(worker);
  }

  #restart(err: Error): void {
    this.#fail(err);
    this.#worker?.terminate();
    this.#worker = undefined;
    this.#terminateRetired();
  }

  #terminateRetired(): void {
    for (const w of this.#retired) w.terminate();
    this.#retired.clear();
  }

  #fail(err: Error): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.#pending.clear();
  }
}

/** Bytes DuckDB said form a Parquet file but that do not start and end with `PAR1`. */
export class CorruptParquetError extends Error {
  constructor(why: string) {
    super(`DuckDB wrote an unreadable Parquet file: ${why}`);
    this.name = "CorruptParquetError";
  }
}

const PAR1 = [0x50, 0x41, 0x52, 0x31];

/** Why `bytes` are not a Parquet file (no `PAR1` magic at both ends), or undefined. */
export function parquetProblem(bytes: Uint8Array): string | undefined {
  if (bytes.length < 12) return `only ${bytes.length} bytes`;
  const at = (o: number) => PAR1.every((v, i) => bytes[o + i] === v);
  return at(0) && at(bytes.length - 4) ? undefined : "no PAR1 magic";
}
