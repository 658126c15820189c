/**
 * The embedded log: a local write-ahead log that stands in for Kafka when `KAFKA_BROKERS` is unset.
 * An HTTP 2xx is answered only after the events are fsynced here; the lake loader then reads the WAL
 * like a one-partition topic, so both modes share one durable path and one exactly-once protocol.
 *
 * On disk: segment files `<base offset, 20 digits>.wal`, each a run of frames
 * `[u32 length][u32 crc32][f64 append time ms][payload]`, little-endian. A torn tail left by a crash
 * fails its CRC or length check and is cut off at the next open.
 *
 * This file is the log itself; `event_log.ts` (the `EventLog` HTTP appends to) and
 * `input.ts` (the `LogInput` the lake loader reads) sit on it.
 *
 * @module
 */
import { join } from "node:path";
import { GroupCommitter } from "../group_commit.ts";
import type { LogRecord } from "../durable_log.ts";
import { syncDir, writeAll } from "../../shared/fs.ts";

/** The topic name WAL records carry, so bronze files name their origin as Kafka ones do. */
export const WAL_TOPIC = "wal";
const HEADER = 16;
const SEGMENT_NAME = /^(\d{20})\.wal$/;

/** Options of {@link Wal.open}. */
export interface WalOptions {
  /** Roll to a new segment past this size. @default 67108864 */
  segmentBytes?: number;
  /** Most records in one fsync. @default 10000 */
  maxBatch?: number;
  /** Most records waiting for an fsync before appends are refused. @default 200000 */
  maxPending?: number;
}

interface Segment {
  base: number;
  path: string;
  /** Durable size in bytes. */
  size: number;
  /** Records in the segment (known for the active segment; -1 when not yet counted). */
  count: number;
}

/** A segmented, fsynced, append-only log of byte records with dense offsets from 0. */
export class Wal {
  readonly #dir: string;
  readonly #segmentBytes: number;
  readonly #segments: Segment[];
  #file: Deno.FsFile;
  #next: number;
  readonly #committer: GroupCommitter<Uint8Array>;
  #waiters: (() => void)[] = [];
  #closed = false;
  #cursor: { offset: number; segment: Segment; pos: number } | undefined;

  private constructor(dir: string, segments: Segment[], file: Deno.FsFile, options: WalOptions) {
    this.#dir = dir;
    this.#segments = segments;
    this.#file = file;
    this.#segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024;
    const active = segments.at(-1)!;
    this.#next = active.base + active.count;
    this.#committer = new GroupCommitter((items) => this.#write(items), {
      maxBatch: options.maxBatch ?? 10_000,
      maxPending: options.maxPending ?? 200_000,
    });
  }

  /** Opens (or creates) the WAL in `dir`, cutting off a torn tail left by a crash. */
  static async open(dir: string, options: WalOptions = {}): Promise<Wal> {
    await Deno.mkdir(dir, { recursive: true });
    const segments: Segment[] = [];
    for await (const entry of Deno.readDir(dir)) {
      const m = entry.isFile ? SEGMENT_NAME.exec(entry.name) : null;
      if (m) segments.push({ base: Number(m[1]), path: join(dir, entry.name), size: 0, count: -1 });
    }
    segments.sort((a, b) => a.base - b.base);
    for (const s of segments) s.size = (await Deno.stat(s.path)).size;
    if (segments.length === 0) {
      segments.push({ base: 0, path: join(dir, segmentName(0)), size: 0, count: 0 });
      await Deno.writeFile(segments[0]!.path, new Uint8Array(0));
      await syncDir(dir);
    }
    const active = segments.at(-1)!;
    const { count, validBytes } = await scanSegment(active.path);
    if (validBytes < active.size) {
      await Deno.truncate(active.path, validBytes);
      active.size = validBytes;
    }
    active.count = count;
    const file = await Deno.open(active.path, { write: true, append: true });
    return new Wal(dir, segments, file, options);
  }

  /** The offset the next appended record will get; every smaller offset is durable. */
  get nextOffset(): number {
    return this.#next;
  }

  /** The smallest offset still stored. */
  get firstOffset(): number {
    return this.#segments[0]!.base;
  }

  /** Whether close() has run: nothing more will be appended. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Records waiting for their fsync. */
  get pending(): number {
    return this.#committer.pending;
  }

  /** Appends records; resolves once they are fsynced. */
  append(payloads: Uint8Array[]): Promise<void> {
    return this.#committer.submit(payloads);
  }

  async #write(payloads: Uint8Array[]): Promise<void> {
    let bytes = 0;
    for (const p of payloads) bytes += HEADER + p.byteLength;
    let active = this.#segments.at(-1)!;
    if (active.size > 0 && active.size + bytes > this.#segmentBytes) active = await this.#roll();
    const buf = new Uint8Array(bytes);
    const view = new DataView(buf.buffer);
    const now = Date.now();
    let at = 0;
    for (const p of payloads) {
      view.setUint32(at, p.byteLength, true);
      view.setFloat64(at + 8, now, true);
      buf.set(p, at + HEADER);
      view.setUint32(at + 4, crc32(buf.subarray(at + 8, at + HEADER + p.byteLength)), true);
      at += HEADER + p.byteLength;
    }
    try {
      await writeAll(this.#file, buf);
      await this.#file.syncData();
    } catch (err) {
      // A failed or partial write must not be followed by appends after the torn bytes: cut back.
      await Deno.truncate(active.path, active.size).catch(() => {});
      throw new Error(`Cannot append to the WAL in "${this.#dir}": ${(err as Error).message}`, {
        cause: err,
      });
    }
    active.size += bytes;
    active.count += payloads.length;
    this.#next += payloads.length;
    for (const wake of this.#waiters.splice(0)) wake();
  }

  async #roll(): Promise<Segment> {
    this.#file.close();
    const seg: Segment = {
      base: this.#next,
      path: join(this.#dir, segmentName(this.#next)),
      size: 0,
      count: 0,
    };
    this.#file = await Deno.open(seg.path, { write: true, create: true, append: true });
    await syncDir(this.#dir);
    this.#segments.push(seg);
    return seg;
  }

  /** Resolves when a record at `offset` exists, or the WAL closes, or `signal` aborts. */
  waitFor(offset: number, signal?: AbortSignal): Promise<void> {
    if (offset < this.#next || this.#closed || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        signal?.removeEventListener("abort", wake);
        resolve();
      };
      this.#waiters.push(wake);
      signal?.addEventListener("abort", wake, { once: true });
    });
  }

  /** Reads durable records from `from` on, at most `maxRecords` or about `maxBytes`. */
  async read(from: number, maxRecords: number, maxBytes = 8 * 1024 * 1024): Promise<LogRecord[]> {
    if (from >= this.#next) return [];
    if (from < this.firstOffset) {
      throw new Error(
        `Cannot read WAL offset ${from}: the oldest stored offset is ${this.firstOffset}`,
      );
    }
    let { segment, pos } = this.#cursor?.offset === from ? this.#cursor : await this.#locate(from);
    const out: LogRecord[] = [];
    let offset = from;
    let bytes = 0;
    while (out.length < maxRecords && bytes < maxBytes && offset < this.#next) {
      if (pos >= segment.size) {
        const nextSeg = this.#segments[this.#segments.indexOf(segment) + 1];
        if (!nextSeg) break;
        segment = nextSeg;
        pos = 0;
        continue;
      }
      const chunk = await readRange(
        segment.path,
        pos,
        Math.min(segment.size - pos, Math.max(maxBytes - bytes, 64 * 1024)),
      );
      const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      let at = 0;
      while (at + HEADER <= chunk.byteLength && out.length < maxRecords) {
        const len = view.getUint32(at, true);
        if (at + HEADER + len > chunk.byteLength) break;
        out.push({
          topic: WAL_TOPIC,
          partition: 0,
          offset: offset++,
          timestampMs: view.getFloat64(at + 8, true),
          value: chunk.slice(at + HEADER, at + HEADER + len),
        });
        at += HEADER + len;
        bytes += len;
      }
      if (at === 0) {
        // One record larger than the chunk: read exactly that record next time round.
        const len = view.getUint32(0, true);
        const one = await readRange(segment.path, pos, HEADER + len);
        out.push({
          topic: WAL_TOPIC,
          partition: 0,
          offset: offset++,
          timestampMs: new DataView(one.buffer).getFloat64(8, true),
          value: one.slice(HEADER),
        });
        at = HEADER + len;
        bytes += len;
      }
      pos += at;
    }
    this.#cursor = { offset, segment, pos };
    return out;
  }

  async #locate(offset: number): Promise<{ segment: Segment; pos: number }> {
    let segment = this.#segments[0]!;
    for (const s of this.#segments) if (s.base <= offset) segment = s;
    const data = await readRange(segment.path, 0, segment.size);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let pos = 0;
    for (let o = segment.base; o < offset; o++) pos += HEADER + view.getUint32(pos, true);
    return { segment, pos };
  }

  /** Deletes whole segments whose records all lie before `offset` (the lake has them). */
  async truncateBefore(offset: number): Promise<void> {
    while (this.#segments.length > 1 && this.#segments[1]!.base <= offset) {
      const gone = this.#segments.shift()!;
      if (this.#cursor?.segment === gone) this.#cursor = undefined;
      await Deno.remove(gone.path).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    }
  }

  /** Flushes what is queued, then closes. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#committer.close();
    this.#closed = true;
    this.#file.close();
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

function segmentName(base: number): string {
  return `${String(base).padStart(20, "0")}.wal`;
}

async function readRange(path: string, pos: number, length: number): Promise<Uint8Array> {
  using file = await Deno.open(path, { read: true });
  await file.seek(pos, Deno.SeekMode.Start);
  const buf = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** Counts the valid frames of a segment and where they end. */
async function scanSegment(path: string): Promise<{ count: number; validBytes: number }> {
  const data = await Deno.readFile(path);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = 0, count = 0;
  while (at + HEADER <= data.byteLength) {
    const len = view.getUint32(at, true);
    const end = at + HEADER + len;
    if (end > data.byteLength) break;
    if (crc32(data.subarray(at + 8, end)) !== view.getUint32(at + 4, true)) break;
    at = end;
    count++;
  }
  return { count, validBytes: at };
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE), as zlib computes it. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
