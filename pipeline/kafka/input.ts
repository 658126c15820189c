/**
 * The Kafka {@link LogInput}: a consumer group member that hands records to the lake loader and
 * commits offsets only when the lake has them.
 *
 * @module
 */
import type { LogInput, LogRecord, RecordHandler } from "../durable_log.ts";
import type { Batch, Consumer, EachBatchPayload, Kafka } from "./client.ts";

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
  /**
   * Called when this input restarts, after `retryMs`, a consumer kafkajs gave up on (kafkajs logs
   * its own restarts, after retriable errors).
   */
  onRestart?: (error: Error, retryMs: number) => void;
  /** Largest wait between two restarts this input makes after a crash. @default 5000 */
  maxRestartMs?: number;
}

/** First wait before this input restarts a consumer kafkajs gave up on. */
const FIRST_RESTART_MS = 200;

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
  #handler: RecordHandler | undefined;
  /** Why the member consumes nothing now (a crash not yet recovered from), or undefined. */
  #down: string | undefined;
  #restarts = 0;
  #restartTimer: ReturnType<typeof setTimeout> | undefined;

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
      this.#down = undefined;
      this.#restarts = 0;
      options.onJoin?.([...assigned].sort(), e.payload.memberId);
    });
    // kafkajs restarts a consumer only after a retriable error; after any other (a broker
    // restarting can answer with one) it stays stopped for good, and records would wait forever.
    this.#consumer.on(this.#consumer.events.CRASH, (e) => {
      const { error, restart } = e.payload;
      this.#down = `the consumer crashed: ${error.message}`;
      if (!restart && !this.#stopping && !this.#closed) this.#restartLater(error);
    });
  }

  /**
   * Why this member consumes nothing now (it crashed and is being restarted), or undefined while
   * it runs: for readiness.
   */
  get down(): string | undefined {
    return this.#down;
  }

  #restartLater(error: Error): void {
    const max = this.#options.maxRestartMs ?? 5_000;
    const wait = Math.min(max, FIRST_RESTART_MS * 2 ** this.#restarts++);
    this.#options.onRestart?.(error, wait);
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#stopping || this.#closed) return;
      // kafkajs disconnected the crashed consumer; the subscription stays.
      this.#consumer.connect().then(() => this.#run()).catch((err) => this.#restartLater(err));
    }, wait);
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
    this.#handler = handler;
    await this.#consumer.connect();
    await this.#consumer.subscribe({
      topics: this.#options.topics,
      fromBeginning: this.#options.fromBeginning,
    });
    await this.#run();
  }

  /** Runs the connected, subscribed consumer (again, after a crash). */
  async #run(): Promise<void> {
    const handler = this.#handler!;
    const chunk = this.#options.chunkRecords ?? 2000;
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
      await handler.handle(part, heartbeat);
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
    clearTimeout(this.#restartTimer);
    try {
      this.#consumer.pause(this.#options.topics.map((topic) => ({ topic })));
    } catch {
      // Not running (crashed, its restart cancelled above): nothing is fetched, nothing in flight.
    }
    if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
  }

  /** Leaves the group and disconnects. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#consumer.disconnect();
  }
}
