/**
 * The bronze layer: accepted events as hive-partitioned Parquet,
 * `$LAKE_DIR/bronze/events/dt=YYYY-MM-DD/type=<type>/<topic>+<partition>+<first>+<last>.parquet`.
 *
 * Exactly once, per log partition (a Kafka partition or the WAL):
 * 1. A batch covers a contiguous offset range of one partition; its files are named after it.
 * 2. Writers of a partition take an exclusive lock (flock) on its progress file, so a consumer
 *    that lost the partition in a rebalance cannot interleave with the new owner.
 * 3. Under the lock: read progress; delete the files of a batch a crash left half-written; drop the
 *    rows below `next_offset` (already in the lake); record the batch as pending; write each file
 *    to a staging name, fsync, rename into place; record `next_offset = last + 1`.
 * 4. Only then is the Kafka offset committed. Re-delivered records are trimmed at step 3.
 *
 * `dt` is the UTC date of `received_at` (ingest date): bronze is append-only, and a late event
 * never rewrites an old partition. Partition values come only from validated values.
 *
 * @module
 */
import { join } from "node:path";
import { type Column, LakeEngine } from "./engine/engine.ts";
import { type Envelope, EVENT_TYPES, OTHER_TYPE } from "../shared/schemas.ts";
import { isoToMicros } from "../shared/time.ts";
import type { LakeRoot } from "./disk.ts";
import { removeIfExists, syncDir, writeFileDurably } from "../shared/fs.ts";

/** The bronze table's directory under the lake root. */
export const BRONZE_EVENTS = join("bronze", "events");
const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
const PARTITION_TYPES = new Set<string>([...EVENT_TYPES, OTHER_TYPE]);

/** An accepted event and its position in the log. */
export interface BronzeRow {
  offset: number;
  event: Envelope;
}

/** A contiguous offset range of one log partition, and the accepted events in it. */
export interface BronzeBatch {
  topic: string;
  partition: number;
  /** First and last offset covered, rejected records included. */
  firstOffset: number;
  lastOffset: number;
  rows: BronzeRow[];
}

/** What a write did. */
export interface BronzeWriteResult {
  /** Rows written now. */
  rows: number;
  /** Rows dropped because the lake already had them. */
  skipped: number;
  files: string[];
  bytes: number;
}

interface Progress {
  next_offset: number;
  pending?: { first: number; last: number; files: string[] };
}

/** The name of a batch's files: sortable, and the same every time the same range is written. */
export function bronzeFileName(
  topic: string,
  partition: number,
  first: number,
  last: number,
): string {
  if (!TOPIC.test(topic)) throw new Error(`Cannot name a bronze file for topic "${topic}"`);
  if (!Number.isSafeInteger(partition) || partition < 0) {
    throw new Error(`Invalid partition ${partition}`);
  }
  const pad = (n: number) => String(n).padStart(20, "0");
  return `${topic}+${partition}+${pad(first)}+${pad(last)}.parquet`;
}

/**
 * The directory of one bronze partition. Refuses any value that is not a date or a known type, so
 * no raw client string can become part of a path.
 */
export function partitionDir(lakeDir: string, dt: string, type: string): string {
  if (!DATE.test(dt)) throw new Error(`Invalid partition date "${dt}"`);
  if (!PARTITION_TYPES.has(type)) throw new Error(`Invalid partition type "${type}"`);
  return join(lakeDir, BRONZE_EVENTS, `dt=${dt}`, `type=${type}`);
}

/** The UTC date partition of an event: the date of its `received_at`. */
export function partitionDate(event: Envelope): string {
  return event.received_at.slice(0, 10);
}

/** Writes bronze batches exactly once per log offset. */
export class BronzeWriter {
  readonly #engine: LakeEngine;
  readonly #lakeDir: string;
  readonly #root: LakeRoot | undefined;

  /** With `root`, every write first checks the lake is still the directory it was at start. */
  constructor(engine: LakeEngine, lakeDir: string, options: { root?: LakeRoot | undefined } = {}) {
    this.#engine = engine;
    this.#lakeDir = lakeDir;
    this.#root = options.root;
  }

  /** The next offset of a partition that is not yet in the lake. */
  async committedOffset(topic: string, partition: number): Promise<number> {
    return (await this.#readProgress(topic, partition)).next_offset;
  }

  /** Writes a batch; see the module documentation for the protocol. */
  async write(batch: BronzeBatch): Promise<BronzeWriteResult> {
    const { topic, partition, lastOffset } = batch;
    const key = `${topic}+${partition}`;
    bronzeFileName(topic, partition, 0, 0); // validates topic and partition
    await this.#root?.check();
    const progressDir = join(this.#lakeDir, "_progress", "bronze");
    await Deno.mkdir(progressDir, { recursive: true });
    using lock = await Deno.open(join(progressDir, `${key}.lock`), { create: true, write: true });
    await lock.lock(true);
    try {
      let progress = await this.#readProgress(topic, partition);
      if (progress.pending) {
        for (const f of progress.pending.files) await removeIfExists(join(this.#lakeDir, f));
        progress = { next_offset: progress.next_offset };
        await this.#writeProgress(topic, partition, progress);
      }
      const rows = batch.rows.filter((r) => r.offset >= progress.next_offset);
      const skipped = batch.rows.length - rows.length;
      if (lastOffset < progress.next_offset) return { rows: 0, skipped, files: [], bytes: 0 };
      const first = Math.max(batch.firstOffset, progress.next_offset);

      const files: string[] = [];
      let bytes = 0;
      if (rows.length > 0) {
        const name = bronzeFileName(topic, partition, first, lastOffset);
        const groups = new Map<string, BronzeRow[]>();
        for (const r of rows) {
          const dir = partitionDir(this.#lakeDir, partitionDate(r.event), r.event.type);
          const group = groups.get(dir);
          if (group) group.push(r);
          else groups.set(dir, [r]);
        }
        for (const dir of groups.keys()) {
          files.push(join(dir.slice(this.#lakeDir.length + 1), name));
        }
        await this.#writeProgress(topic, partition, {
          next_offset: progress.next_offset,
          pending: { first, last: lastOffset, files },
        });

        // dt and type live only in the path: a data column named like a partition column makes
        // Spark refuse the table, so each partition's file is written on its own.
        const staging = join(this.#lakeDir, "_staging", "bronze", key);
        await removeIfExists(staging);
        await Deno.mkdir(staging, { recursive: true });
        let i = 0;
        for (const [dir, group] of groups) {
          const src = join(staging, `${i++}.parquet`);
          await this.#engine.writeParquet(toColumns(group, topic, partition), src);
          bytes += await makeDurableOrRecycle(this.#engine, src);
          await Deno.mkdir(dir, { recursive: true });
          await Deno.rename(src, join(dir, name));
          await syncDir(dir);
        }
        await removeIfExists(staging);
      }
      await this.#writeProgress(topic, partition, { next_offset: lastOffset + 1 });
      return { rows: rows.length, skipped, files, bytes };
    } finally {
      await lock.unlock();
    }
  }

  #progressPath(topic: string, partition: number): string {
    return join(this.#lakeDir, "_progress", "bronze", `${topic}+${partition}.json`);
  }

  async #readProgress(topic: string, partition: number): Promise<Progress> {
    try {
      return JSON.parse(await Deno.readTextFile(this.#progressPath(topic, partition))) as Progress;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return { next_offset: 0 };
      throw err;
    }
  }

  async #writeProgress(topic: string, partition: number, progress: Progress): Promise<void> {
    await writeFileDurably(this.#progressPath(topic, partition), JSON.stringify(progress));
  }
}

/** A Parquet file DuckDB said it wrote, but that does not start and end with `PAR1`. */
export class CorruptParquetError extends Error {
  constructor(path: string, why: string) {
    super(`DuckDB wrote an unreadable Parquet file "${path}": ${why}`);
    this.name = "CorruptParquetError";
  }
}

const PAR1 = new TextEncoder().encode("PAR1");

/**
 * Makes a freshly written file readable by other users (DuckDB creates 0600) and fsyncs it. A
 * `.parquet` file must also start and end with the `PAR1` magic: DuckDB-wasm has been seen to
 * report success for files holding other bytes once its memory ran high, and such a file must
 * fail the write (and be retried) rather than be renamed into the lake and committed.
 */
export async function makeDurable(path: string): Promise<number> {
  await Deno.chmod(path, 0o644);
  using f = await Deno.open(path, { read: true, write: true });
  await f.sync();
  const size = (await f.stat()).size;
  if (path.endsWith(".parquet")) {
    if (size < 12) throw new CorruptParquetError(path, `only ${size} bytes`);
    const head = new Uint8Array(4), tail = new Uint8Array(4);
    await f.seek(0, Deno.SeekMode.Start);
    await readFull(f, head);
    await f.seek(size - 4, Deno.SeekMode.Start);
    await readFull(f, tail);
    const magic = (b: Uint8Array) => b.every((v, i) => v === PAR1[i]);
    if (!magic(head) || !magic(tail)) throw new CorruptParquetError(path, "no PAR1 magic");
  }
  return size;
}

async function readFull(f: Deno.FsFile, into: Uint8Array): Promise<void> {
  let at = 0;
  while (at < into.length) {
    const n = await f.read(into.subarray(at));
    if (n === null) throw new Error("Unexpected end of file");
    at += n;
  }
}

function toColumns(rows: BronzeRow[], topic: string, partition: number): Record<string, Column> {
  const n = rows.length;
  const str = () => new Array<string>(n);
  const eventId = str(), eventType = str(), userId = str(), source = str(), payload = str();
  const topics = str();
  const occurred = new Float64Array(n),
    received = new Float64Array(n),
    offsets = new Float64Array(n);
  const partitions = new Int32Array(n).fill(partition);
  for (let i = 0; i < n; i++) {
    const { event, offset } = rows[i]!;
    eventId[i] = event.event_id;
    eventType[i] = event.event_type;
    userId[i] = event.user_id;
    source[i] = event.source;
    payload[i] = JSON.stringify(event.payload);
    occurred[i] = isoToMicros(event.occurred_at);
    received[i] = isoToMicros(event.received_at);
    offsets[i] = offset;
    topics[i] = topic;
  }
  return {
    event_id: { kind: "utf8", values: eventId },
    event_type: { kind: "utf8", values: eventType },
    user_id: { kind: "utf8", values: userId },
    occurred_at: { kind: "timestamp_us", values: occurred },
    received_at: { kind: "timestamp_us", values: received },
    source: { kind: "utf8", values: source },
    payload: { kind: "utf8", values: payload },
    log_topic: { kind: "utf8", values: topics },
    log_partition: { kind: "int32", values: partitions },
    log_offset: { kind: "int64", values: offsets },
  };
}

/**
 * {@link makeDurable}, and on a corrupt file a fresh DuckDB worker for the retry: the old one's
 * state is what produced it.
 */
export async function makeDurableOrRecycle(engine: LakeEngine, path: string): Promise<number> {
  try {
    return await makeDurable(path);
  } catch (err) {
    if (err instanceof CorruptParquetError) engine.recycle();
    throw err;
  }
}
