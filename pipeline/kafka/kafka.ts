/**
 * The only module that imports kafkajs: the Kafka {@link EventLog} (HTTP → events topic), the Kafka
 * {@link DeadLetterSink} (dead-letter topic) and the Kafka {@link LogInput} (consumer group → lake).
 *
 * @module
 */
import process from "node:process";
import {
  type Admin,
  type Batch,
  type Consumer,
  type EachBatchPayload,
  Kafka,
  type KafkaConfig,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
import { GroupCommitter } from "../group_commit.ts";
import {
  type DeadLetter,
  type DeadLetterSink,
  encodeEnvelope,
  type EventLog,
  type LogInput,
  type LogRecord,
  type RecordHandler,
} from "../durable_log.ts";
import type { PartitionLag } from "../../shared/metrics.ts";
import type { Envelope } from "../../shared/schemas.ts";
import type { Logger } from "../../shared/logger.ts";
import type { AlertSink } from "../fraud/sinks.ts";
import type { Alert } from "../../shared/alert.ts";

/** Connection settings shared by producers and consumers. */
export interface KafkaOptions {
  brokers: string[];
  clientId: string;
  connectionTimeoutMs: number;
  logger: Logger;
}

/** A kafkajs client with bounded retries and its log routed to ours. */
export function createKafka(options: KafkaOptions): Kafka {
  quietNegativeTimeouts();
  const log = options.logger;
  const config: KafkaConfig = {
    brokers: options.brokers,
    clientId: options.clientId,
    connectionTimeout: options.connectionTimeoutMs,
    requestTimeout: 30_000,
    retry: { initialRetryTime: 200, retries: 8, maxRetryTime: 5_000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ level, log: entry }) => {
      const { message, ...extra } = entry;
      const fields = { component: "kafkajs", ...extra } as Record<string, unknown>;
      const expected = EXPECTED_WARNINGS[message];
      if (expected) log.info(message, { ...fields, note: expected });
      else if (level <= logLevel.ERROR) log.error(message, fields);
      else log.warn(message, fields);
    },
  };
  return new Kafka(config);
}

/** kafkajs warnings about choices made here on purpose: logged at info, with the reason. */
const EXPECTED_WARNINGS: Record<string, string> = {
  "Limiting retries for the idempotent producer may invalidate EoS guarantees":
    "deliberate: a produce gives up after 8 retries so the request gets a 503 instead " +
    "of waiting forever; a client retrying it may add a second record, which silver drops by " +
    "event_id (README: Guarantees)",
};

let quieted = false;

/**
 * kafkajs 2.2.4 arms a timer with a negative delay on every connection (kafkajs#1751: its request
 * queue subtracts `Date.now()` from an unset throttle time), and Node's compatibility layer prints a non-JSON
 * `TimeoutNegativeWarning` to stderr. Harmless (the timer fires at once); dropped here, while
 * every other process warning is still shown.
 */
export function quietNegativeTimeouts(): void {
  if (quieted) return;
  quieted = true;
  const shown = process.listeners("warning");
  process.removeAllListeners("warning");
  process.on("warning", (w: Error) => {
    if (w.name !== "TimeoutNegativeWarning") { for (const l of shown) l(w); }
  });
}

/** Tracks whether a producer's connection is up, for backpressure and readiness. */
function watchConnection(producer: Producer): () => boolean {
  let up = false;
  producer.on(producer.events.CONNECT, () => up = true);
  producer.on(producer.events.DISCONNECT, () => up = false);
  return () => up;
}

/** Bytes of records in one produce request: under the broker's default 1 MiB message.max.bytes. */
const MAX_PRODUCE_BYTES = 768 * 1024;
/** A record's framing in a v2 record batch, at most (varints, attributes, headers count). */
const RECORD_OVERHEAD_BYTES = 32;

/** Options of {@link KafkaEventLog}. */
export interface KafkaEventLogOptions {
  topic: string;
  maxBatch: number;
  maxPending: number;
}

/**
 * Accepted HTTP events → the events topic, keyed by `user_id` (one user's events stay in order in one
 * partition). The idempotent producer waits for all in-sync replicas (acks = -1), so a resolved
 * append is durable; concurrent requests share one produce request (group commit).
 */
export class KafkaEventLog implements EventLog {
  readonly #producer: Producer;
  readonly #topic: string;
  readonly #committer: GroupCommitter<Envelope>;
  readonly #connected: () => boolean;
  readonly #maxPending: number;

  private constructor(producer: Producer, options: KafkaEventLogOptions) {
    this.#producer = producer;
    this.#topic = options.topic;
    this.#connected = watchConnection(producer);
    this.#maxPending = options.maxPending;
    this.#committer = new GroupCommitter((events) => this.#send(events), {
      maxBatch: options.maxBatch,
      maxPending: options.maxPending,
      concurrency: 1,
    });
  }

  /** Connects an idempotent producer. */
  static async connect(kafka: Kafka, options: KafkaEventLogOptions): Promise<KafkaEventLog> {
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // kafkajs 2's default (murmur2 of the key, as Java's), named so it does not warn at start.
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    const log = new KafkaEventLog(producer, options);
    await producer.connect();
    return log;
  }

  append(events: Envelope[]): Promise<void> {
    return this.#committer.submit(events);
  }

  async #send(events: Envelope[]): Promise<void> {
    // One produce request per ≤ MAX_PRODUCE_BYTES: a group commit of thousands of events would
    // otherwise put more than the broker's message.max.bytes (1 MiB by default) into one
    // partition's record batch, and the broker refuses the whole request.
    let messages: { key: string; value: Buffer }[] = [];
    let bytes = 0;
    const flush = async () => {
      if (messages.length === 0) return;
      await this.#producer.send({ topic: this.#topic, acks: -1, messages });
      messages = [];
      bytes = 0;
    };
    for (const e of events) {
      const value = Buffer.from(encodeEnvelope(e));
      const size = value.byteLength + Buffer.byteLength(e.user_id) + RECORD_OVERHEAD_BYTES;
      if (bytes + size > MAX_PRODUCE_BYTES) await flush();
      messages.push({ key: e.user_id, value });
      bytes += size;
    }
    await flush();
  }

  overloaded(): string | undefined {
    if (!this.#connected()) return "Kafka is not reachable";
    if (this.#committer.pending > this.#maxPending * 0.9) return "The Kafka producer is behind";
    return undefined;
  }

  async close(): Promise<void> {
    await this.#committer.close();
    await this.#producer.disconnect();
  }
}

/** Header names of a dead letter, after Kafka Connect's `__connect.errors.*` convention. */
export const DLQ_HEADERS = {
  reasons: "dlq.reasons",
  source: "dlq.source",
  topic: "dlq.topic",
  partition: "dlq.partition",
  offset: "dlq.offset",
  receivedAt: "dlq.received_at",
  requestId: "dlq.request_id",
  index: "dlq.index",
} as const;

/** Dead letters → the dead-letter topic: the original bytes as the value, the reasons in headers. */
export class KafkaDeadLetterSink implements DeadLetterSink {
  readonly #producer: Producer;
  readonly #topic: string;

  private constructor(producer: Producer, topic: string) {
    this.#producer = producer;
    this.#topic = topic;
  }

  static async connect(kafka: Kafka, topic: string): Promise<KafkaDeadLetterSink> {
    const producer = kafka.producer({
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    return new KafkaDeadLetterSink(producer, topic);
  }

  async send(letters: DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    await this.#producer.send({
      topic: this.#topic,
      acks: -1,
      messages: letters.map((l) => {
        const headers: Record<string, string> = {
          [DLQ_HEADERS.reasons]: JSON.stringify(l.reasons),
          [DLQ_HEADERS.source]: l.source,
          [DLQ_HEADERS.receivedAt]: l.received_at,
        };
        if (l.topic !== undefined) headers[DLQ_HEADERS.topic] = l.topic;
        if (l.partition !== undefined) headers[DLQ_HEADERS.partition] = String(l.partition);
        if (l.offset !== undefined) headers[DLQ_HEADERS.offset] = String(l.offset);
        if (l.request_id !== undefined) headers[DLQ_HEADERS.requestId] = l.request_id;
        if (l.index !== undefined) headers[DLQ_HEADERS.index] = String(l.index);
        return { value: Buffer.from(l.raw), headers };
      }),
    });
  }

  async close(): Promise<void> {
    await this.#producer.disconnect();
  }
}

/**
 * Alerts to the alerts topic: JSON values keyed by user id (one user's alerts stay in order), with
 * the alert id as a header so consumers can drop the copy a crash-and-replay may produce.
 */
export class KafkaAlertSink implements AlertSink {
  readonly name = "kafka";
  readonly #producer: Producer;
  readonly #topic: string;

  private constructor(producer: Producer, topic: string) {
    this.#producer = producer;
    this.#topic = topic;
  }

  static async connect(kafka: Kafka, topic: string): Promise<KafkaAlertSink> {
    const producer = kafka.producer({
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    return new KafkaAlertSink(producer, topic);
  }

  async send(alerts: Alert[]): Promise<void> {
    if (alerts.length === 0) return;
    await this.#producer.send({
      topic: this.#topic,
      acks: -1,
      messages: alerts.map((a) => ({
        key: a.user_id,
        value: JSON.stringify(a),
        headers: { "alert.id": a.alert_id },
      })),
    });
  }

  async close(): Promise<void> {
    await this.#producer.disconnect();
  }
}

/** Options of {@link KafkaInput}. */
export interface KafkaInputOptions {
  groupId: string;
  topics: string[];
  fromBeginning: boolean;
  /** Records handed to the handler at a time; the consumer heartbeats between chunks. */
  chunkRecords?: number;
  /** Partitions processed at once. */
  concurrency?: number;
  /** How long a crashed member keeps its partitions; heartbeats go every tenth of it. */
  sessionTimeoutMs?: number;
  /** Called after each (re)join of the group with the partitions now held (`topic/partition`). */
  onJoin?: (assigned: string[], memberId: string) => void;
}

const EMPTY = new Uint8Array(0);

/**
 * A consumer group member that feeds the lake loader. Auto-commit is off: offsets are committed by
 * {@link KafkaInput.commit} once the lake has the records. kafkajs fetches from the resolved offset,
 * so resolving right after buffering keeps the fetch moving while the commit waits for the flush.
 */
export class KafkaInput implements LogInput {
  readonly #consumer: Consumer;
  readonly #options: KafkaInputOptions;
  #assigned = new Set<string>();
  #closed = false;
  #stopping = false;
  #inFlight = 0;
  #drained: (() => void)[] = [];

  constructor(kafka: Kafka, options: KafkaInputOptions) {
    this.#options = options;
    this.#consumer = kafka.consumer({
      groupId: options.groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: Math.floor((options.sessionTimeoutMs ?? 30_000) / 10),
      maxBytesPerPartition: 4 * 1024 * 1024,
      maxBytes: 32 * 1024 * 1024,
      maxWaitTimeInMs: 500,
    });
    this.#consumer.on(this.#consumer.events.GROUP_JOIN, (e) => {
      const assigned = new Set<string>();
      for (const [topic, partitions] of Object.entries(e.payload.memberAssignment)) {
        for (const p of partitions) assigned.add(`${topic}/${p}`);
      }
      this.#assigned = assigned;
      options.onJoin?.([...assigned].sort(), e.payload.memberId);
    });
  }

  /** The partitions this member holds, as `topic/partition`. */
  get assigned(): ReadonlySet<string> {
    return this.#assigned;
  }

  /** The consumer, for lag and instrumentation. */
  get consumer(): Consumer {
    return this.#consumer;
  }

  async start(handler: RecordHandler): Promise<void> {
    const chunk = this.#options.chunkRecords ?? 2000;
    await this.#consumer.connect();
    await this.#consumer.subscribe({
      topics: this.#options.topics,
      fromBeginning: this.#options.fromBeginning,
    });
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.#options.concurrency ?? 3,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        this.#inFlight++;
        try {
          await this.#eachBatch(batch, chunk, handler, {
            resolveOffset,
            heartbeat,
            isRunning,
            isStale,
          });
        } finally {
          if (--this.#inFlight === 0) { for (const done of this.#drained.splice(0)) done(); }
        }
      },
    });
  }

  async #eachBatch(
    batch: Batch,
    chunk: number,
    handler: RecordHandler,
    ctl: Pick<EachBatchPayload, "resolveOffset" | "heartbeat" | "isRunning" | "isStale">,
  ): Promise<void> {
    const { resolveOffset, heartbeat, isRunning, isStale } = ctl;
    const records: LogRecord[] = batch.messages.map((m) => ({
      topic: batch.topic,
      partition: batch.partition,
      offset: Number(m.offset),
      timestampMs: Number(m.timestamp),
      value: m.value
        ? new Uint8Array(m.value.buffer, m.value.byteOffset, m.value.byteLength)
        : EMPTY,
    }));
    for (let i = 0; i < records.length; i += chunk) {
      if (this.#stopping || !isRunning() || isStale()) return;
      const part = records.slice(i, i + chunk);
      await handler.handle(part);
      resolveOffset(String(part.at(-1)!.offset));
      await heartbeat();
    }
  }

  async commit(topic: string, partition: number, nextOffset: number): Promise<void> {
    if (this.#closed) return;
    await this.#consumer.commitOffsets([{ topic, partition, offset: String(nextOffset) }]);
  }

  /** Pauses every topic and waits for the batches in flight; the group membership stays. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#consumer.pause(this.#options.topics.map((topic) => ({ topic })));
    if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
  }

  /** Leaves the group and disconnects. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#consumer.disconnect();
  }
}

/** Options of {@link KafkaLag}. */
export interface KafkaLagOptions {
  /** The consumer group whose committed offsets count. */
  groupId: string;
  /** The topics it consumes. */
  topics: string[];
}

/**
 * Consumer lag of a group, from the broker: per partition, the high watermark minus the group's
 * committed offset (the lake loader commits only what bronze holds, so this is "not yet in the
 * lake"). A partition with no committed offset counts from its low watermark. Every partition of
 * the topics is reported, whichever member holds it, so the lag of a crashed member still shows.
 * Bound and throttle calls with `throttleLagProbe()` (`metrics.ts`): a read waits on the client's
 * retries when the broker is down.
 */
export class KafkaLag {
  readonly #kafka: Kafka;
  readonly #options: KafkaLagOptions;
  #admin: Promise<Admin> | undefined;
  #closed = false;

  constructor(kafka: Kafka, options: KafkaLagOptions) {
    this.#kafka = kafka;
    this.#options = options;
  }

  /** Reads the lag of every partition of the topics. */
  async read(): Promise<PartitionLag[]> {
    if (this.#closed) throw new Error("Cannot read consumer lag: the reader is closed");
    const { groupId, topics } = this.#options;
    try {
      const admin = await this.#connect();
      const [committed, ...ends] = await Promise.all([
        admin.fetchOffsets({ groupId, topics }),
        ...topics.map((topic) => admin.fetchTopicOffsets(topic)),
      ]);
      const lags: PartitionLag[] = [];
      topics.forEach((topic, i) => {
        const done = new Map(
          committed.find((c) => c.topic === topic)?.partitions.map((p) => [p.partition, p.offset]),
        );
        for (const end of ends[i]!) {
          const offset = Number(done.get(end.partition) ?? -1);
          const from = offset >= 0 ? offset : Number(end.low);
          lags.push({ topic, partition: end.partition, lag: Math.max(0, Number(end.high) - from) });
        }
      });
      return lags;
    } catch (err) {
      throw new Error(
        `Reading consumer lag of group "${groupId}": ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  #connect(): Promise<Admin> {
    if (!this.#admin) {
      const admin = this.#kafka.admin();
      this.#admin = admin.connect().then(() => admin);
      // A failed connection is retried on the next read.
      this.#admin.catch(() => this.#admin = undefined);
    }
    return this.#admin;
  }

  /** Disconnects the admin client. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const admin = await this.#admin?.catch(() => undefined);
    await admin?.disconnect();
  }
}
