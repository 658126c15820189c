/**
 * The bronze layer: accepted events as a Delta table of hive-partitioned Parquet files,
 * `bronze/events/dt=YYYY-MM-DD/type=<type>/<topic>+<partition>+<first>+<last>-<id>.parquet`.
 *
 * Exactly once per log partition (a Kafka partition or the WAL), the way kafka-delta-ingest does
 * it: every commit carries, next to its files, a `txn` action whose `appId` is the log partition
 * and whose `version` is the last offset the commit holds. A writer
 * 1. reads the partition's `txn` version from the table: offsets up to it are in the lake;
 * 2. writes the files of the rest of the batch (new names each time: a file is never rewritten);
 * 3. commits them and the new `txn` version in one put-if-absent of the next log version.
 * When another writer committed first (a consumer that lost the partition in a rebalance, or the
 * same process's earlier life), the commit is decided again on the new `txn` version: what is
 * already in the lake is dropped, the rest rewritten. Only after the commit is the Kafka offset
 * committed; re-delivered records are dropped at step 1. Files a crash left behind are in no
 * commit, so no reader sees them, and vacuum deletes them.
 *
 * `dt` is the UTC date of `received_at` (ingest date): bronze is append-only, and a late event
 * never rewrites an old partition. Partition values come only from validated values.
 *
 * @module
 */
import type { LakeEngine } from "./engine/engine.ts";
import type { Column } from "./engine/protocol.ts";
import type { Action, AddFile } from "./delta/protocol.ts";
import type { DeltaTable } from "./delta/table.ts";
import type { Envelope } from "../shared/schemas.ts";
import { isoToMicros } from "../shared/time.ts";
import { bronzeAppId, bronzeFile } from "./layout.ts";
import { castObject } from "./silver/cast.ts";
import { bronzeFields, CAST_SPEC } from "./silver/spec.ts";
import { fieldColumn } from "./engine/columns.ts";

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

/** The UTC date partition of an event: the date of its `received_at`. */
export function partitionDate(event: Envelope): string {
  return event.received_at.slice(0, 10);
}

/** Writes bronze batches exactly once per log offset. */
export class BronzeWriter {
  readonly #engine: LakeEngine;
  readonly #table: DeltaTable;

  constructor(engine: LakeEngine, table: DeltaTable) {
    this.#engine = engine;
    this.#table = table;
  }

  /** The next offset of a partition that is not yet in the lake. */
  async committedOffset(topic: string, partition: number): Promise<number> {
    return (await this.#table.snapshot()).txn(bronzeAppId(topic, partition)) + 1;
  }

  /** Writes a batch; see the module documentation for the protocol. */
  async write(batch: BronzeBatch): Promise<BronzeWriteResult> {
    const { topic, partition, lastOffset } = batch;
    const appId = bronzeAppId(topic, partition);
    let written: { first: number; adds: AddFile[]; rows: number; bytes: number } | undefined;
    let skipped = 0;
    // The files go up before the commit's turn (the table's commits take turns, uploads need not),
    // for the range the lake does not hold now; the attempt reuses them if that is still so.
    const known = (await this.#table.snapshot()).txn(appId) + 1;
    if (lastOffset >= known) {
      const first = Math.max(batch.firstOffset, known);
      written = await this.#writeFiles(batch, batch.rows.filter((r) => r.offset >= known), first);
    }
    const done = await this.#table.commit("STREAMING UPDATE", async (snapshot) => {
      const next = snapshot.txn(appId) + 1;
      const rows = batch.rows.filter((r) => r.offset >= next);
      skipped = batch.rows.length - rows.length;
      if (lastOffset < next) return undefined;
      const first = Math.max(batch.firstOffset, next);
      // Files of an earlier attempt are reused only for exactly this range; otherwise they stay
      // out of the table (no commit names them) and new ones are written.
      if (written?.first !== first) written = await this.#writeFiles(batch, rows, first);
      const txn = { appId, version: lastOffset, lastUpdated: Date.now() };
      return [...written.adds.map((add): Action => ({ add })), { txn }];
    });
    if (!done || !written) return { rows: 0, skipped, files: [], bytes: 0 };
    return {
      rows: written.rows,
      skipped,
      files: written.adds.map((a) => this.#table.keyOf(a.path)),
      bytes: written.bytes,
    };
  }

  /**
   * One file per (dt, type) of the rows: dt and type live only in the path and the log. Each
   * file's columns go to the engine as soon as they are built, so the engine writes one file while
   * this thread builds the next, and each upload starts as soon as its file is written; the adds
   * keep the groups' order.
   */
  async #writeFiles(batch: BronzeBatch, rows: BronzeRow[], first: number) {
    const { topic, partition, lastOffset } = batch;
    const groups = new Map<string, { dt: string; type: string; rows: BronzeRow[] }>();
    for (const r of rows) {
      const dt = partitionDate(r.event), type = r.event.type;
      const key = `${dt}/${type}`;
      const group = groups.get(key);
      if (group) group.rows.push(r);
      else groups.set(key, { dt, type, rows: [r] });
    }
    const files: Promise<{ add: AddFile; bytes: number }>[] = [];
    for (const { dt, type, rows: group } of groups.values()) {
      const path = bronzeFile(dt, type, { topic, partition, first, last: lastOffset });
      const { columns, hours } = await columnsYielding(group, type, topic, partition);
      files.push(
        this.#engine.parquet(columns).then(async (file) => ({
          add: await this.#table.putFile(path, file, { dt, type }, { typed: true, hours }),
          bytes: file.bytes.byteLength,
        })),
      );
    }
    // Every file settles before the write fails or goes on: none is still uploading afterwards.
    const settled = await Promise.allSettled(files);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    const done = settled.map((r) =>
      (r as PromiseFulfilledResult<{ add: AddFile; bytes: number }>).value
    );
    return {
      first,
      adds: done.map((d) => d.add),
      rows: rows.length,
      bytes: done.reduce((n, d) => n + d.bytes, 0),
    };
  }
}

/**
 * The columns of one bronze file (every row of one `type`): the envelope, the payload as JSON
 * text, and, typed, what silver takes from it (`bronzeFields(type)`, `extra`, `reject`), cast here
 * from the validated payload object so silver never parses the JSON again. Also the file's
 * summary: how many rows occurred in each UTC hour.
 */
export function toColumns(
  rows: BronzeRow[],
  type: string,
  topic: string,
  partition: number,
): { columns: Record<string, Column>; hours: Record<string, number> } {
  const b = columnBuilder(rows, type, topic, partition);
  b.fill(0, rows.length);
  return b.finish();
}

/** Rows whose columns are built between two turns of the event loop (~8 ms of work). */
const SLICE_ROWS = 4096;

/**
 * {@link toColumns}, built a slice of rows at a time with a turn of the event loop in between: an
 * embedded gateway's HTTP requests share this thread, and a flush of 50,000 rows would otherwise
 * hold them up for ~100 ms.
 */
async function columnsYielding(
  rows: BronzeRow[],
  type: string,
  topic: string,
  partition: number,
): Promise<{ columns: Record<string, Column>; hours: Record<string, number> }> {
  const b = columnBuilder(rows, type, topic, partition);
  for (let from = 0; from < rows.length; from += SLICE_ROWS) {
    // A turn between two slices, none after the last: a small group costs no timer.
    if (from > 0) await new Promise((resolve) => setTimeout(resolve, 0));
    b.fill(from, Math.min(rows.length, from + SLICE_ROWS));
  }
  return b.finish();
}

/** The arrays of {@link toColumns}, filled by row ranges. */
function columnBuilder(rows: BronzeRow[], type: string, topic: string, partition: number) {
  const n = rows.length;
  const str = () => new Array<string>(n);
  const eventId = str(), eventType = str(), userId = str(), source = str(), payload = str();
  const topics = str();
  const occurred = new Float64Array(n),
    received = new Float64Array(n),
    offsets = new Float64Array(n);
  const partitions = new Int32Array(n).fill(partition);
  const fields = bronzeFields(type);
  const domainFields = CAST_SPEC.types[type]
    ? CAST_SPEC.domains[CAST_SPEC.types[type]!.domain]!.fields.map((f) => f.name)
    : [];
  const at = fields.map((f) => domainFields.indexOf(f.name));
  const typed = fields.map(() => new Array<string | number | null>(n));
  const extra = new Array<string | null>(n), reject = new Array<string | null>(n);
  const hours: Record<string, number> = {};
  let lastHour = NaN, hourKey = "";
  const fill = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
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
      const h = Math.floor(occurred[i]! / 3_600_000_000); // from the µs: whatever the text's zone
      if (h !== lastHour) {
        (lastHour = h, hourKey = new Date(h * 3_600_000).toISOString().slice(0, 13));
      }
      hours[hourKey] = (hours[hourKey] ?? 0) + 1;
      const cast = castObject(CAST_SPEC, type, event.event_type, event.payload);
      extra[i] = cast.ok ? cast.extra : null;
      reject[i] = cast.ok ? null : cast.reason;
      for (let f = 0; f < fields.length; f++) typed[f]![i] = cast.ok ? cast.values[at[f]!]! : null;
    }
  };
  const finish = () => {
    const columns: Record<string, Column> = {
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
    fields.forEach((f, k) => columns[f.name] = fieldColumn(f.kind, typed[k]!));
    columns.extra = { kind: "utf8", values: extra };
    columns.reject = { kind: "utf8", values: reject };
    return { columns, hours };
  };
  return { fill, finish };
}
