/**
 * The contract every durable log keeps: an {@link EventLog} that HTTP appends to and the
 * {@link LogInput} that feeds the lake from it. {@link durableLogContract} registers the same
 * `Deno.test` cases for any pair, so the embedded WAL and Kafka cannot drift apart on what the
 * lake loader relies on: a resolved append is durable, records come back as stored with their
 * offsets, a restart resumes after the committed offset with nothing lost or twice, `stop()`
 * drains, refusals are fast, and closing is safe.
 *
 * What they do not share stays in their own tests: why `overloaded()` answers (the WAL: the lake
 * is too far behind; Kafka: the broker is unreachable or the producer behind), segments, consumer
 * groups. Kafka's commit can move back, the WAL's cannot; the cases only commit forward.
 *
 * jsr: is not reachable on these machines, so assertions use node:assert.
 *
 * @module
 */
import { registerContract } from "./contract.ts";
import assert from "node:assert/strict";
import type { EventLog, LogInput, LogRecord } from "../pipeline/durable_log.ts";
import { OverloadedError, ShuttingDownError } from "../shared/errors.ts";
import type { Envelope } from "../shared/schemas.ts";

/** A log and an input on it, opened as a process opens them at start. */
export interface DurableLogPair {
  log: EventLog;
  input: LogInput;
  /** Closes the input, then the log. */
  close(): Promise<void>;
}

/** A log and its input as one pair, closed input first. */
export function logPair(log: EventLog, input: LogInput): DurableLogPair {
  return {
    log,
    input,
    async close() {
      await input.close();
      await log.close();
    },
  };
}

/** Options of {@link DurableLogFixture.open}. */
export interface OpenOptions {
  /** Events waiting for durability beyond which an append is refused. @default 10000 */
  maxPending?: number;
}

/** What a contract test gets from the log under test; `make()` returns a fresh one per test. */
export interface DurableLogFixture {
  /**
   * Opens the log and an input on it. The input resumes after the last offset committed through
   * an earlier pair of this fixture (from the start when there is none).
   */
  open(options?: OpenOptions): Promise<DurableLogPair>;
  /**
   * Every record stored so far, read by an independent reader (not the input under test), as a
   * crash at this moment would leave them; sorted by partition, then offset.
   */
  stored(): Promise<LogRecord[]>;
  /** Called after the test, pass or fail: closes what is open, deletes what was created. */
  cleanup(): Promise<void>;
}

type Make = () => Promise<DurableLogFixture>;

/** The message of the error the contract's failing handler throws (an input may report it). */
const HANDLER_BUG = "a bug in the handler";

/** Whether `err` is the failure a contract case's handler throws on purpose. */
export function isHandlerBug(err: unknown): boolean {
  return err instanceof TypeError && err.message === HANDLER_BUG;
}

/** Longest wait for records to come through. */
const TIMEOUT_MS = 30_000;
/** How long nothing more must arrive for a delivery to count as complete (no duplicates). */
const QUIET_MS = 1_500;

/** Registers the contract tests for the log `make()` builds, named `<name>: …`. */
export function durableLogContract(name: string, make: Make): void {
  registerContract(name, CASES, make);
}

const RUN = crypto.randomUUID().slice(0, 8);
let sequence = 0;

/** `n` valid envelopes over `users` users; `payload.seq` is their append order. */
function events(n: number, users = 5): Envelope[] {
  return Array.from({ length: n }, (_, i) => {
    const seq = sequence++;
    return {
      event_id: crypto.randomUUID(),
      type: "login",
      event_type: "login",
      user_id: `contract-${RUN}-u${i % users}`,
      occurred_at: "2026-05-01T12:00:00.000000Z",
      received_at: "2026-05-01T12:00:01.000000Z",
      source: "contract",
      payload: { seq, ip: "203.0.113.7" },
    };
  });
}

const decoder = new TextDecoder();

function decode(record: LogRecord): Record<string, unknown> {
  return JSON.parse(decoder.decode(record.value));
}

function idsOf(records: readonly LogRecord[]): string[] {
  return records.map((r) => decode(r).event_id as string);
}

const partitionOf = (r: LogRecord) => `${r.topic}/${r.partition}`;

function byPosition(a: LogRecord, b: LogRecord): number {
  return partitionOf(a).localeCompare(partitionOf(b)) || a.offset - b.offset;
}

/** Records handed to a handler, with the batches they came in. */
interface Gathered {
  records: LogRecord[];
  batches: LogRecord[][];
  /** Resolves once `n` records arrived; rejects after {@link TIMEOUT_MS}. */
  until(n: number): Promise<void>;
  /** {@link until}, then checks that no record more arrives for {@link QUIET_MS}. */
  exactly(n: number): Promise<LogRecord[]>;
}

/** Starts `input` with a handler that keeps what it gets; `gate` (if any) holds each batch. */
async function gather(input: LogInput, gate?: () => Promise<void>): Promise<Gathered> {
  const records: LogRecord[] = [];
  const batches: LogRecord[][] = [];
  await input.start({
    async handle(batch) {
      batches.push(batch);
      records.push(...batch);
      await gate?.();
    },
  });
  const until = async (n: number) => {
    const deadline = Date.now() + TIMEOUT_MS;
    while (records.length < n) {
      if (Date.now() > deadline) {
        throw new Error(`Got ${records.length} of ${n} records within ${TIMEOUT_MS} ms`);
      }
      await sleep(20);
    }
  };
  return {
    records,
    batches,
    until,
    async exactly(n) {
      await until(n);
      await sleep(QUIET_MS);
      assert.equal(records.length, n, "no record more, and none twice");
      return [...records].sort(byPosition);
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Commits, per partition, the offset after the first half of its records; returns those. */
async function commitFirstHalf(input: LogInput, records: LogRecord[]): Promise<LogRecord[]> {
  const committed: LogRecord[] = [];
  const partitions = Map.groupBy([...records].sort(byPosition), partitionOf);
  for (const part of partitions.values()) {
    const half = part.slice(0, Math.ceil(part.length / 2));
    const last = half.at(-1)!;
    await input.commit(last.topic, last.partition, last.offset + 1);
    committed.push(...half);
  }
  return committed;
}

const CASES: Record<string, (fixture: DurableLogFixture) => Promise<void>> = {
  async "a resolved append() is durable: an independent reader finds every event"({
    open,
    stored,
  }) {
    const pair = await open();
    try {
      const batch = events(40);
      await Promise.all([pair.log.append(batch.slice(0, 25)), pair.log.append(batch.slice(25))]);
      // Read while the log is still open: nothing is flushed by closing it.
      const found = await stored();
      assert.deepEqual(new Set(idsOf(found)), new Set(batch.map((e) => e.event_id)));
      assert.equal(found.length, 40);
    } finally {
      await pair.close();
    }
  },

  async "an empty append() resolves and stores nothing"({ open, stored }) {
    const pair = await open();
    try {
      await pair.log.append([]);
      assert.deepEqual(await stored(), []);
    } finally {
      await pair.close();
    }
  },

  async "the input hands over what is stored: the client envelope, offsets, per-user order"({
    open,
    stored,
  }) {
    const pair = await open();
    try {
      const before = Date.now();
      const batch = events(60);
      for (let i = 0; i < 60; i += 12) await pair.log.append(batch.slice(i, i + 12));
      const after = Date.now();
      const got = await gather(pair.input);
      const records = await got.exactly(60);

      // The same records an independent reader sees: partitions, offsets and bytes.
      const view = (r: LogRecord) => [partitionOf(r), r.offset, decoder.decode(r.value)];
      assert.deepEqual(records.map(view), (await stored()).map(view));
      // Each handle() call holds one partition's records in offset order.
      for (const b of got.batches) {
        assert.equal(new Set(b.map(partitionOf)).size, 1);
        assert.deepEqual(b.map((r) => r.offset), [...b.map((r) => r.offset)].sort((x, y) => x - y));
      }
      // Offsets are dense per partition.
      for (const part of Map.groupBy(records, partitionOf).values()) {
        const first = part[0]!.offset;
        assert.deepEqual(part.map((r) => r.offset), part.map((_, i) => first + i));
      }
      // The stored value is the envelope as clients send it: `type`, no `event_type`.
      const sent = new Map(batch.map((e) => [e.event_id, e]));
      for (const r of records) {
        const value = decode(r);
        const e = sent.get(value.event_id as string)!;
        const { event_type, type: _, ...rest } = e;
        assert.deepEqual(value, { ...rest, type: event_type });
        assert.ok(r.timestampMs >= before && r.timestampMs <= after, "append time");
      }
      // One user's events keep their append order (they share a partition).
      for (const [user, mine] of Map.groupBy(records, (r) => decode(r).user_id as string)) {
        assert.equal(new Set(mine.map(partitionOf)).size, 1, user);
        const seqs = mine.map((r) => (decode(r).payload as { seq: number }).seq);
        assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), user);
      }
    } finally {
      await pair.close();
    }
  },

  async "a restart resumes after the committed offset: nothing lost, nothing twice"({ open }) {
    const batch = events(30);
    let committed: LogRecord[];
    const first = await open();
    try {
      await first.log.append(batch);
      const got = await gather(first.input);
      committed = await commitFirstHalf(first.input, await got.exactly(30));
    } finally {
      await first.close();
    }

    const second = await open();
    try {
      const rest = batch.map((e) => e.event_id).filter((id) => !idsOf(committed).includes(id));
      const got = await gather(second.input);
      assert.deepEqual(new Set(idsOf(await got.exactly(rest.length))), new Set(rest));
      // New appends follow, after the offsets already used.
      const more = events(6);
      await second.log.append(more);
      await got.until(rest.length + 6);
      const after = got.records.slice(rest.length);
      assert.deepEqual(new Set(idsOf(after)), new Set(more.map((e) => e.event_id)));
      const last = new Map(committed.map((r) => [partitionOf(r), r.offset]));
      for (const r of got.records) assert.ok(r.offset > (last.get(partitionOf(r)) ?? -1));
    } finally {
      await second.close();
    }
  },

  async "records handled but not committed come again after a restart"({ open }) {
    const batch = events(20);
    const first = await open();
    try {
      await first.log.append(batch);
      await (await gather(first.input)).exactly(20);
    } finally {
      await first.close();
    }
    const second = await open();
    try {
      const again = await (await gather(second.input)).exactly(20);
      assert.deepEqual(new Set(idsOf(again)), new Set(batch.map((e) => e.event_id)));
    } finally {
      await second.close();
    }
  },

  async "a handler that throws gets its records again, and the input goes on"({ open }) {
    // A TypeError is what kafkajs gives up on for good (it restarts only after retriable errors):
    // the input itself must bring the consumer back, or the records wait forever.
    const batch = events(30);
    const pair = await open();
    try {
      await pair.log.append(batch);
      let failed: LogRecord[] | undefined;
      const handed = new Set<string>();
      await pair.input.start({
        handle(records) {
          if (!failed) {
            failed = records;
            return Promise.reject(new TypeError(HANDLER_BUG));
          }
          for (const id of idsOf(records)) handed.add(id);
          return Promise.resolve();
        },
      });
      const deadline = Date.now() + TIMEOUT_MS;
      while (handed.size < batch.length && Date.now() < deadline) await sleep(20);
      assert.equal(handed.size, batch.length, "every record is handed over after the failure");
      for (const id of idsOf(failed!)) assert.ok(handed.has(id), `${id} of the failed batch again`);
    } finally {
      await pair.close();
    }
  },

  async "stop() waits for the handler, hands over nothing after, and commit() still counts"({
    open,
  }) {
    const batch = events(20);
    let committed: LogRecord[];
    const later = events(5);
    const first = await open();
    try {
      let release!: () => void;
      const held = new Promise<void>((r) => release = r);
      await first.log.append(batch);
      const got = await gather(first.input, () => held);
      await got.until(1);
      let stopped = false;
      const stopping = first.input.stop().then(() => stopped = true);
      await sleep(300);
      assert.equal(stopped, false, "stop() waits for the handle() in flight");
      release();
      await stopping;
      const handed = got.records.length;
      await first.log.append(later);
      await sleep(QUIET_MS);
      assert.equal(got.records.length, handed, "nothing handed over after stop()");
      // The lake loader's shutdown: stop, flush, then commit what the flush made durable.
      committed = await commitFirstHalf(first.input, got.records);
    } finally {
      await first.close();
    }

    const second = await open();
    try {
      const all = [...batch, ...later].map((e) => e.event_id);
      const rest = all.filter((id) => !idsOf(committed).includes(id));
      const got = await gather(second.input);
      assert.deepEqual(new Set(idsOf(await got.exactly(rest.length))), new Set(rest));
    } finally {
      await second.close();
    }
  },

  async "an append beyond the pending limit is refused at once and stores nothing"({
    open,
    stored,
  }) {
    const pair = await open({ maxPending: 100 });
    try {
      assert.equal(pair.log.overloaded(), undefined, "a log that keeps up is not overloaded");
      await assert.rejects(pair.log.append(events(101)), OverloadedError);
      const fits = events(100);
      await pair.log.append(fits);
      assert.deepEqual(new Set(idsOf(await stored())), new Set(fits.map((e) => e.event_id)));
      assert.equal(pair.log.overloaded(), undefined);
    } finally {
      await pair.close();
    }
  },

  async "close() is safe twice; append() after close() rejects with ShuttingDownError"({
    open,
    stored,
  }) {
    const pair = await open();
    const batch = events(3);
    await pair.log.append(batch);
    await gather(pair.input);
    await pair.input.close();
    await pair.input.close();
    await pair.log.close();
    await pair.log.close();
    await assert.rejects(pair.log.append(events(1)), ShuttingDownError);
    assert.deepEqual(new Set(idsOf(await stored())), new Set(batch.map((e) => e.event_id)));
  },
};
