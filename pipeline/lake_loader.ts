/**
 * The processor between a log and the lake: decodes and validates every record (the same function
 * HTTP uses), sends rejects to the dead-letter sink, buffers accepted events per log partition, and
 * flushes a partition's buffer to bronze on size or age. The input's offset is committed only after
 * the flush is durable.
 *
 * A full buffer is written in the background while the partition's next records are buffered: the
 * main thread validates and scores while the lake engine's thread writes. At most one write is in
 * flight per partition (the next full buffer waits for it), so the writes, their `txn` versions and
 * the offset commits stay in order, and a partition holds at most two buffers. A write that fails
 * puts its rows back in front of the buffer, and the next one is retried in the foreground, as
 * before: the rows are written once, in order, and memory stays bounded during an outage.
 *
 * @module
 */
import type { BronzeBatch, BronzeRow, BronzeWriteResult } from "../lake/bronze.ts";
import type { EventProcessor } from "./processor.ts";
import type {
  DeadLetter,
  DeadLetterSink,
  DecodedValue,
  LogRecord,
  RecordDecoder,
  RecordHandler,
} from "./durable_log.ts";
import { type Metrics, typeOf } from "../shared/metrics.ts";
import { validateEvent, type ValidationOptions } from "./validate.ts";
import { recordEventId } from "../shared/ids.ts";
import { WAL_TOPIC } from "./wal/wal.ts";

/** The largest distance from the epoch a `Date` holds, in ms. */
const MAX_DATE_MS = 8.64e15;

/** Where batches go: the bronze writer, or a test double. */
export interface BatchWriter {
  write(batch: BronzeBatch): Promise<BronzeWriteResult>;
  /**
   * The next offset of a log partition the lake does not hold yet (the table's `txn` + 1): records
   * below it that the log delivers again (after a restart or a rebalance) are skipped.
   */
  committedOffset?(topic: string, partition: number): Promise<number>;
}

/** Backoff of a flush retried while the log input waits (doubling, at most this, ms). */
const RETRY_MAX_MS = 5_000;
/** How often handle() heartbeats the log input's group membership while it waits. */
const HEARTBEAT_MS = 1_000;

/** Options of {@link LakeLoader}. */
export interface LakeLoaderOptions {
  validation: ValidationOptions;
  /** Flush a partition at this many buffered rows. */
  flushRows: number;
  /** Flush a partition at about this many buffered bytes. */
  flushBytes: number;
  /** Flush a partition whose oldest buffered record is this old. */
  flushIntervalMs: number;
  /** Called after a flush is durable; commits the input's offset. */
  commit: (topic: string, partition: number, nextOffset: number) => Promise<void>;
  /** Reports a failure that is retried, e.g. a flush from the timer. */
  onError: (err: unknown) => void;
  /**
   * Reports a failed offset commit (the lake already holds the records: the log hands them over
   * again and they are skipped). @default onError
   */
  onCommitError?: (err: unknown) => void;
  /** Told of every finished flush, for metrics and logs. */
  onFlush?: (batch: BronzeBatch, result: BronzeWriteResult, ms: number) => void;
  /** Sees every accepted batch (fraud scoring); the offset commit waits for its side effects. */
  processor?: EventProcessor;
  /** Reads values framed for a schema registry before validation; unset = every value is JSON. */
  decoder?: RecordDecoder;
  /**
   * Counts Kafka records (`source="kafka"`), dead letters and bronze writes. Records read back
   * from the embedded WAL are not counted as events again: `POST /events` counted them.
   */
  metrics?: Metrics;
}

/** A buffer handed to the writer, and what it takes along. */
interface Flight {
  batch: BronzeBatch;
  bytes: number;
  since: number;
  settling: Promise<void>[];
  /** Resolves when the write is over, either way (never rejects). */
  landed: Promise<void>;
}

interface Buffer {
  topic: string;
  partition: number;
  first: number;
  last: number;
  rows: BronzeRow[];
  bytes: number;
  since: number;
  /** Serialises handle() and flush() for one partition. */
  lock: Promise<unknown>;
  /** Side effects (alerts) of the buffered rows still under way. */
  settling: Promise<void>[];
  /** The partition's commits, in order. */
  commits: Promise<void>;
  /** Offsets below this are in the lake already (-1: not asked yet; asked again at a jump). */
  floor: number;
  /** A flush of handle() is being retried: the timer leaves the partition alone. */
  retrying: boolean;
  /** The write in flight; its rows precede the buffer's. */
  flight: Flight | undefined;
  /** The last write failed and its rows are back in the buffer: the next write is not backgrounded. */
  failed: boolean;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** A group member's heartbeat during one handle() call, and the error it failed with. */
interface Member {
  beat: () => Promise<void>;
  lost: unknown;
}

/** Counters of a {@link LakeLoader}. */
export interface LoaderStats {
  records: number;
  accepted: number;
  rejected: number;
  /** Records delivered again that the lake already held, skipped before validation. */
  redelivered: number;
  rowsWritten: number;
  filesWritten: number;
  bytesWritten: number;
  flushes: number;
  flushFailures: number;
}

/** Log records → validated events → bronze, exactly once per offset. */
export class LakeLoader implements RecordHandler {
  readonly #writer: BatchWriter;
  readonly #deadLetters: DeadLetterSink;
  readonly #opts: LakeLoaderOptions;
  readonly #buffers = new Map<string, Buffer>();
  readonly #timer: ReturnType<typeof setInterval>;
  #closed = false;
  /** Set by {@link stopRetrying}: a failed flush in handle() gives up instead of retrying. */
  #giveUp = false;
  readonly stats: LoaderStats = {
    records: 0,
    accepted: 0,
    rejected: 0,
    redelivered: 0,
    rowsWritten: 0,
    filesWritten: 0,
    bytesWritten: 0,
    flushes: 0,
    flushFailures: 0,
  };

  constructor(writer: BatchWriter, deadLetters: DeadLetterSink, options: LakeLoaderOptions) {
    this.#writer = writer;
    this.#deadLetters = deadLetters;
    this.#opts = options;
    const tick = Math.max(20, Math.min(500, Math.floor(options.flushIntervalMs / 4)));
    this.#timer = setInterval(() => this.#flushAged(), tick);
  }

  /** Rows buffered or being written and not yet in the lake, across partitions. */
  get buffered(): number {
    let n = 0;
    for (const b of this.#buffers.values()) n += b.rows.length + (b.flight?.batch.rows.length ?? 0);
    return n;
  }

  /**
   * Takes records of one partition, in offset order. A full buffer is handed to a write in the
   * background, after the previous write of the partition has landed; after a failed write it is
   * flushed here instead. Also waits for the schema registry when a framed record's schema is not
   * cached yet. With `heartbeat` (a consumer group member's), it heartbeats every
   * {@link HEARTBEAT_MS} while it waits (for the partition's lock, which a slow timer flush may
   * hold, for the previous write, or for its own flush), and a flush that fails is retried here
   * until it succeeds: the partition waits for the lake instead of its member leaving the group.
   */
  async handle(records: LogRecord[], heartbeat?: () => Promise<void>): Promise<void> {
    if (!heartbeat) return await this.#handle(records);
    const member: Member = { lost: undefined, beat: async () => {} };
    member.beat = () => heartbeat().catch((err) => void (member.lost ??= err));
    const timer = setInterval(member.beat, HEARTBEAT_MS);
    try {
      return await this.#handle(records, heartbeat, member);
    } finally {
      clearInterval(timer);
    }
  }

  async #handle(
    records: LogRecord[],
    heartbeat?: () => Promise<void>,
    member?: Member,
  ): Promise<void> {
    if (records.length === 0) return;
    const { topic, partition } = records[0]!;
    const buf = this.#buffer(topic, partition);
    records = await this.#skipRedelivered(buf, records);
    if (records.length === 0) return;
    // Outside the lock: a wait for the registry must not hold up the timer's flush of the rows
    // already buffered (handle() is never called twice at once for one partition).
    const decoded = this.#opts.decoder
      ? await this.#opts.decoder.decode(records, heartbeat)
      : undefined;
    return this.#locked(buf, async () => {
      // A redelivery of rows being written waits for the write: if it lands, the rows it holds are
      // skipped; if it fails, they are buffered again and the redelivered records replace them.
      if (records[0]!.offset <= buf.last) await this.#landed(buf);
      const start = this.#unwritten(buf, records);
      if (start === records.length) return;
      const { accepted, bytes } = await this.#accept(buf, records, start, decoded);
      this.#append(buf, records[start]!.offset, records.at(-1)!.offset, accepted, bytes);
      if (buf.rows.length >= this.#opts.flushRows || buf.bytes >= this.#opts.flushBytes) {
        await this.#handOff(buf, member);
      }
    });
  }

  /**
   * The index of the first record the lake does not hold (records come in offset order); the ones
   * before count as redelivered.
   */
  #unwritten(buf: Buffer, records: LogRecord[]): number {
    let i = 0;
    while (i < records.length && records[i]!.offset < buf.floor) i++;
    this.stats.redelivered += i;
    return i;
  }

  /**
   * Validates `records` from `start` on, dead-letters the rejects and scores the accepted events;
   * returns the accepted rows and their bytes.
   */
  async #accept(
    buf: Buffer,
    records: LogRecord[],
    start: number,
    decoded: (DecodedValue | undefined)[] | undefined,
  ): Promise<{ accepted: BronzeRow[]; bytes: number }> {
    const letters: DeadLetter[] = [];
    const accepted: BronzeRow[] = [];
    const types = { received: [] as unknown[], rejected: [] as unknown[] };
    let bytes = 0;
    for (let i = start; i < records.length; i++) {
      const rec = records[i]!;
      const row = this.#process(rec, letters, types, decoded?.[i]);
      if (row) {
        accepted.push(row);
        bytes += rec.value.byteLength;
      }
    }
    this.stats.records += records.length - start;
    this.stats.accepted += accepted.length;
    this.stats.rejected += letters.length;
    const metrics = this.#opts.metrics;
    if (metrics && buf.topic !== WAL_TOPIC) {
      metrics.events("received", "kafka", types.received);
      metrics.events("accepted", "kafka", accepted.map((r) => r.event.type));
      metrics.events("rejected", "kafka", types.rejected);
    }
    if (letters.length > 0) {
      await this.#deadLetters.send(letters);
      metrics?.deadLetters(letters);
    }
    if (this.#opts.processor && accepted.length > 0) {
      const { settled } = await this.#opts.processor.process(accepted.map((r) => r.event));
      buf.settling.push(settled);
    }
    return { accepted, bytes };
  }

  /** Buffers the accepted rows of the records `first..last` (no write is in flight if they overlap). */
  #append(buf: Buffer, first: number, last: number, accepted: BronzeRow[], bytes: number): void {
    // A record at or below what is buffered is a re-delivery (a rebalance or a retry restarted the
    // fetch from the committed offset): drop the buffered tail it replaces, keep the order.
    if (first <= buf.last) {
      buf.rows = buf.rows.filter((r) => r.offset < first);
      buf.last = first - 1;
      if (buf.rows.length === 0 && first <= buf.first) buf.first = -1;
    }
    if (buf.first < 0) {
      buf.first = first;
      buf.since = Date.now();
    }
    for (const r of accepted) buf.rows.push(r);
    buf.last = last;
    buf.bytes += bytes;
  }

  /**
   * Drops the records the lake holds already. Where the offsets jump (the first records of a
   * partition, or a fetch that restarted after a restart or rebalance), asks the lake where the
   * partition stands: records the table's `txn` covers were written by an earlier life of this
   * worker or by another one, and must not be scored, dead-lettered or buffered again.
   */
  async #skipRedelivered(buf: Buffer, records: LogRecord[]): Promise<LogRecord[]> {
    const first = records[0]!.offset;
    if ((buf.floor < 0 || first !== buf.last + 1) && this.#writer.committedOffset) {
      const lake = await this.#writer.committedOffset(buf.topic, buf.partition);
      // At least what this loader's own writes reached (one may have landed during the question).
      buf.floor = Math.max(buf.floor, lake);
    }
    if (first >= buf.floor) return records;
    const kept = records.slice(this.#unwritten(buf, records));
    if (kept.length === 0 && buf.first < 0 && !buf.flight) {
      // Nothing buffered: the log may move on to what the lake holds (in order, as every commit).
      const { topic, partition } = buf, next = Math.min(buf.floor, records.at(-1)!.offset + 1);
      buf.last = next - 1;
      buf.commits = buf.commits.then(() => this.#opts.commit(topic, partition, next))
        .catch((err) => this.#commitFailed(err));
    }
    return kept;
  }

  /**
   * Flushes `buf` until it succeeds, with a backoff (up to {@link RETRY_MAX_MS}) between attempts
   * while handle() heartbeats. Rejects when a heartbeat did (the member lost the partition or the
   * group is rebalancing) or the loader is closing: the records stay buffered and uncommitted, and
   * the log delivers them again.
   */
  async #flushUntilDone(buf: Buffer, member: Member): Promise<void> {
    buf.retrying = true;
    try {
      for (let attempt = 1;; attempt++) {
        try {
          return await this.#flush(buf);
        } catch (err) {
          if (this.#closed || this.#giveUp || member.lost !== undefined) throw err;
          this.#opts.onError(err);
        }
        const wait = Math.min(RETRY_MAX_MS, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
        await new Promise((r) => setTimeout(r, wait));
        await member.beat();
        if (member.lost !== undefined) throw member.lost;
      }
    } finally {
      buf.retrying = false;
    }
  }

  /**
   * Validates one record, noting its `type` field in `types.received` (and `.rejected` on failure).
   * `framed` is what the decoder made of a framed value.
   */
  #process(
    rec: LogRecord,
    letters: DeadLetter[],
    types: { received: unknown[]; rejected: unknown[] },
    framed: DecodedValue | undefined,
  ): BronzeRow | undefined {
    // A producer sets the record timestamp; one outside what a Date holds must not throw here
    // (the record would block its partition forever): it counts as received now.
    const ms = Number.isFinite(rec.timestampMs) && Math.abs(rec.timestampMs) <= MAX_DATE_MS
      ? rec.timestampMs
      : Date.now();
    // Only dead letters carry it: not built for the records that pass.
    const receivedAt = () => new Date(ms).toISOString();
    if (framed?.ok === false) {
      types.received.push(undefined);
      types.rejected.push(undefined);
      letters.push(this.#letter(rec, receivedAt, framed.issues));
      return undefined;
    }
    let value: unknown;
    try {
      value = framed ? framed.value : JSON.parse(decoder.decode(rec.value));
    } catch (err) {
      const what = rec.value[0] === 0
        ? "framed for a schema registry (magic byte 0) and no registry is configured"
        : err instanceof SyntaxError
        ? "not valid JSON"
        : "not valid UTF-8";
      types.received.push(undefined);
      types.rejected.push(undefined);
      letters.push(
        this.#letter(rec, receivedAt, [{
          path: "",
          code: "invalid_json",
          message: `Record value is ${what}`,
        }]),
      );
      return undefined;
    }
    types.received.push(typeOf(value));
    const result = validateEvent(value, {
      receivedAtMs: ms,
      trustReceivedAt: true,
      source: rec.topic === WAL_TOPIC ? "http" : `kafka:${rec.topic}`,
      eventId: () => recordEventId(rec.topic, rec.partition, rec.offset),
    }, this.#opts.validation);
    if (result.ok) return { offset: rec.offset, event: result.event };
    types.rejected.push(typeOf(value));
    letters.push(this.#letter(rec, receivedAt, result.issues));
    return undefined;
  }

  #letter(rec: LogRecord, receivedAt: () => string, reasons: DeadLetter["reasons"]): DeadLetter {
    return {
      raw: rec.value,
      reasons,
      source: "kafka",
      received_at: receivedAt(),
      topic: rec.topic,
      partition: rec.partition,
      offset: rec.offset,
    };
  }

  #buffer(topic: string, partition: number): Buffer {
    const key = `${topic}\u0000${partition}`;
    let buf = this.#buffers.get(key);
    if (!buf) {
      buf = {
        topic,
        partition,
        first: -1,
        last: -1,
        rows: [],
        bytes: 0,
        since: 0,
        lock: Promise.resolve(),
        settling: [],
        commits: Promise.resolve(),
        floor: -1,
        retrying: false,
        flight: undefined,
        failed: false,
      };
      this.#buffers.set(key, buf);
    }
    return buf;
  }

  #locked<T>(buf: Buffer, fn: () => Promise<T>): Promise<T> {
    const run = buf.lock.then(fn, fn);
    buf.lock = run.catch(() => {});
    return run;
  }

  /** Waits until no write of the partition is in flight. */
  async #landed(buf: Buffer): Promise<void> {
    while (buf.flight) await buf.flight.landed;
  }

  /**
   * Writes what is buffered after the write in flight, and waits for it (and for its offset commit
   * unless alerts hold that up). Rejects when the write fails; its rows are buffered again.
   */
  async #flush(buf: Buffer): Promise<void> {
    await this.#landed(buf);
    if (buf.first < 0) return;
    await this.#launch(buf);
  }

  /**
   * Hands a full (or aged) buffer to a background write once the previous write has landed. After
   * a failed write, flushes in the foreground instead (retried until done for a group member): one
   * batch in flight and one buffer stay the most a partition holds.
   */
  async #handOff(buf: Buffer, member?: Member): Promise<void> {
    await this.#landed(buf);
    if (buf.first < 0) return;
    if (buf.failed) return await (member ? this.#flushUntilDone(buf, member) : this.#flush(buf));
    this.#launch(buf).catch((err) => this.#opts.onError(err));
  }

  /** Moves the buffer into a write in flight; see {@link #flush} for the promise returned. */
  #launch(buf: Buffer): Promise<void> {
    const batch: BronzeBatch = {
      topic: buf.topic,
      partition: buf.partition,
      firstOffset: buf.first,
      lastOffset: buf.last,
      rows: buf.rows,
    };
    const flight: Flight = {
      batch,
      bytes: buf.bytes,
      since: buf.since,
      settling: buf.settling,
      landed: Promise.resolve(),
    };
    buf.rows = [];
    buf.bytes = 0;
    buf.first = -1;
    buf.settling = [];
    buf.flight = flight;
    const run = this.#write(buf, flight).then(() => {
      buf.flight = undefined;
      buf.failed = false;
    }, (err) => {
      buf.flight = undefined;
      buf.failed = true;
      // Back in front of what was buffered meanwhile (later offsets: nothing overlapping is
      // buffered while a write is in flight), to be written again with it.
      buf.rows = batch.rows.concat(buf.rows);
      buf.bytes += flight.bytes;
      buf.first = batch.firstOffset;
      buf.since = flight.since;
      buf.settling = flight.settling.concat(buf.settling);
      throw err;
    });
    flight.landed = run.then(() => {}, () => {});
    return run;
  }

  /** Writes a flight's batch, then commits its offset in order. */
  async #write(buf: Buffer, flight: Flight): Promise<void> {
    const { batch } = flight;
    const t0 = performance.now();
    let result: BronzeWriteResult;
    try {
      result = await this.#writer.write(batch);
    } catch (err) {
      this.stats.flushFailures++;
      throw new Error(
        `Writing bronze batch ${batch.topic}/${batch.partition} offsets ${batch.firstOffset}..${batch.lastOffset}: ${
          (err as Error).message
        }`,
        { cause: err },
      );
    }
    this.stats.flushes++;
    this.stats.rowsWritten += result.rows;
    this.stats.filesWritten += result.files.length;
    this.stats.bytesWritten += result.bytes;
    const ms = performance.now() - t0;
    this.#opts.metrics?.lakeFlushed(result, ms);
    this.#opts.onFlush?.(batch, result, ms);
    const next = batch.lastOffset + 1;
    buf.floor = Math.max(buf.floor, next); // the table's txn covers the batch now
    // Commits stay in order per partition. A batch whose alerts are still out (an LLM call) commits
    // when they are delivered, without holding up the partition; others commit before returning.
    const settling = flight.settling;
    buf.commits = buf.commits.then(async () => {
      await Promise.all(settling);
      await this.#opts.commit(buf.topic, buf.partition, next);
    }).catch((err) => this.#commitFailed(err)); // the table's txn has the batch: a re-read skips it
    if (settling.length === 0) await buf.commits;
  }

  #commitFailed(err: unknown): void {
    (this.#opts.onCommitError ?? this.#opts.onError)(err);
  }

  #flushAged(): void {
    const now = Date.now();
    for (const buf of this.#buffers.values()) {
      if (
        buf.first >= 0 && !buf.retrying && !buf.flight &&
        now - buf.since >= this.#opts.flushIntervalMs
      ) {
        buf.since = now; // one timer flush at a time per partition; a failure retries next interval
        this.#locked(buf, () => this.#handOff(buf)).catch((err) => this.#opts.onError(err));
      }
    }
  }

  /** Flushes every partition now, after the writes in flight. */
  async flushAll(): Promise<void> {
    await Promise.all(
      [...this.#buffers.values()].map((b) => this.#locked(b, () => this.#flush(b))),
    );
    await Promise.all([...this.#buffers.values()].map((b) => b.commits));
  }

  /**
   * Makes a flush that handle() retries give up at its next failure (its records stay buffered and
   * uncommitted): a shutdown during a store outage then waits for no retry to succeed.
   */
  stopRetrying(): void {
    this.#giveUp = true;
  }

  /** Stops the timer and flushes what is buffered. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.flushAll();
  }
}
