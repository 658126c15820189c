/**
 * The Kafka {@link EventLog}: accepted HTTP events → the events topic, durable once every in-sync
 * replica has them.
 *
 * @module
 */
import { GroupCommitter } from "../group_commit.ts";
import { envelopeJson, type EventLog } from "../durable_log.ts";
import type { Envelope } from "../../shared/schemas.ts";
import { createProducer, type Kafka, type Producer } from "./client.ts";
import type { RecordFramer } from "./schema_registry.ts";

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
  /** Frames each value with the topic's schema registry id; unset = bare JSON. */
  framer?: RecordFramer | undefined;
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
  readonly #framer: RecordFramer | undefined;

  private constructor(producer: Producer, options: KafkaEventLogOptions) {
    this.#producer = producer;
    this.#topic = options.topic;
    this.#connected = watchConnection(producer);
    this.#maxPending = options.maxPending;
    this.#framer = options.framer;
    this.#committer = new GroupCommitter((events) => this.#send(events), {
      maxBatch: options.maxBatch,
      maxPending: options.maxPending,
      concurrency: 1,
    });
  }

  /** Connects an idempotent producer. */
  static async connect(kafka: Kafka, options: KafkaEventLogOptions): Promise<KafkaEventLog> {
    const producer = createProducer(kafka, { idempotent: true });
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
      // Buffer.from(string) encodes UTF-8 in one step (a TextEncoder plus a copy cost twice that).
      const json = Buffer.from(envelopeJson(e));
      const value = this.#framer ? this.#framer.frame(json) : json;
      const size = value.byteLength + Buffer.byteLength(e.user_id) + RECORD_OVERHEAD_BYTES;
      if (bytes + size > MAX_PRODUCE_BYTES) await flush();
      messages.push({ key: e.user_id, value });
      bytes += size;
    }
    await flush();
  }

  overloaded(): string | undefined {
    if (!this.#connected()) return "Kafka is not reachable";
    const unframed = this.#framer?.unavailable();
    if (unframed) return unframed;
    if (this.#committer.pending > this.#maxPending * 0.9) return "The Kafka producer is behind";
    return undefined;
  }

  async close(): Promise<void> {
    await this.#committer.close();
    await this.#producer.disconnect();
  }
}
