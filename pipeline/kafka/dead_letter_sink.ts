/**
 * The Kafka {@link DeadLetterSink}: rejected events → the dead-letter topic, the original bytes as
 * the value and the reasons in headers.
 *
 * @module
 */
import type { DeadLetter, DeadLetterSink } from "../durable_log.ts";
import { createProducer, type Kafka, type Producer } from "./client.ts";

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
    const producer = createProducer(kafka);
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
