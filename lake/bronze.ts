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
import type { LakeEngine } from "./engine/engine.ts";
import type { Column } from "./engine/protocol.ts";
import type { Envelope } from "../shared/schemas.ts";
import { isoToMicros } from "../shared/time.ts";
import {
  bronzeFileKey,
  bronzeFileName,
  bronzeLockKey,
  bronzeProgressKey,
  readJson,
  writeJson,
} from "./layout.ts";
import type { LockingStore } from "./storage/store.ts";

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
  /** Keys of the files written. */
  files: string[];
  bytes: number;
}

interface Progress {
  next_offset: number;
  pending?: { first: number; last: number; files: string[] };
}

/** The UTC date partition of an event: the date of its `received_at`. */
export function partitionDate(event: Envelope): string {
  return event.received_at.slice(0, 10);
}

/** Writes bronze batches exactly once per log offset. */
export class BronzeWriter {
  readonly #engine: LakeEngine;
  readonly #store: LockingStore;

  constructor(engine: LakeEngine, store: LockingStore) {
    this.#engine = engine;
    this.#store = store;
  }

  /** The next offset of a partition that is not yet in the lake. */
  async committedOffset(topic: string, partition: number): Promise<number> {
    return (await this.#readProgress(topic, partition)).next_offset;
  }

  /** Writes a batch; see the module documentation for the protocol. */
  async write(batch: BronzeBatch): Promise<BronzeWriteResult> {
    const { topic, partition } = batch;
    bronzeFileName(topic, partition, 0, 0); // validates topic and partition
    const lock = await this.#store.lock(bronzeLockKey(topic, partition));
    try {
      return await this.#writeLocked(batch);
    } finally {
      await lock!.release();
    }
  }

  async #writeLocked(batch: BronzeBatch): Promise<BronzeWriteResult> {
    const { topic, partition, lastOffset } = batch;
    let progress = await this.#readProgress(topic, partition);
    if (progress.pending) {
      for (const f of progress.pending.files) await this.#store.delete(f);
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
        const key = bronzeFileKey(partitionDate(r.event), r.event.type, name);
        const group = groups.get(key);
        if (group) group.push(r);
        else groups.set(key, [r]);
      }
      files.push(...groups.keys());
      await this.#writeProgress(topic, partition, {
        next_offset: progress.next_offset,
        pending: { first, last: lastOffset, files },
      });
      // dt and type live only in the key: a data column named like a partition column makes
      // Spark refuse the table, so each partition's file is written on its own.
      for (const [key, group] of groups) {
        const data = await this.#engine.parquet(toColumns(group, topic, partition));
        await this.#store.put(key, data);
        bytes += data.byteLength;
      }
    }
    await this.#writeProgress(topic, partition, { next_offset: lastOffset + 1 });
    return { rows: rows.length, skipped, files, bytes };
  }

  async #readProgress(topic: string, partition: number): Promise<Progress> {
    return await readJson<Progress>(this.#store, bronzeProgressKey(topic, partition)) ??
      { next_offset: 0 };
  }

  async #writeProgress(topic: string, partition: number, progress: Progress): Promise<void> {
    await writeJson(this.#store, bronzeProgressKey(topic, partition), progress);
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
