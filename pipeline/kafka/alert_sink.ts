/**
 * The Kafka {@link AlertSink}: fraud alerts → the alerts topic.
 *
 * @module
 */
import type { AlertSink } from "../fraud/sinks.ts";
import type { Alert } from "../../shared/alert.ts";
import { createProducer, type Kafka, type Producer } from "./client.ts";
import type { RecordFramer } from "./schema_registry.ts";

/**
 * Alerts to the alerts topic: JSON values keyed by user id (one user's alerts stay in order), with
 * the alert id as a header so consumers can drop the copy a crash-and-replay may produce.
 */
export class KafkaAlertSink implements AlertSink {
  readonly name = "kafka";
  readonly #producer: Producer;
  readonly #topic: string;
  readonly #framer: RecordFramer | undefined;

  private constructor(producer: Producer, topic: string, framer: RecordFramer | undefined) {
    this.#producer = producer;
    this.#topic = topic;
    this.#framer = framer;
  }

  /** `framer` frames each value with the topic's schema registry id; unset = bare JSON. */
  static async connect(
    kafka: Kafka,
    topic: string,
    framer?: RecordFramer,
  ): Promise<KafkaAlertSink> {
    const producer = createProducer(kafka);
    await producer.connect();
    return new KafkaAlertSink(producer, topic, framer);
  }

  async send(alerts: Alert[]): Promise<void> {
    if (alerts.length === 0) return;
    await this.#producer.send({
      topic: this.#topic,
      acks: -1,
      messages: alerts.map((a) => ({
        key: a.user_id,
        value: this.#framer
          ? this.#framer.frame(Buffer.from(JSON.stringify(a)))
          : JSON.stringify(a),
        headers: { "alert.id": a.alert_id },
      })),
    });
  }

  async close(): Promise<void> {
    await this.#producer.disconnect();
  }
}
