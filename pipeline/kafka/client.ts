/**
 * The Kafka client: the only module that imports kafkajs. It builds the client (bounded retries,
 * its log routed to ours), the producers the other files use, and re-exports the kafkajs types
 * they need; the roles live next to it: `event_log.ts` (HTTP → events topic), `dead_letter_sink.ts`,
 * `alert_sink.ts`, `input.ts` (consumer group → lake) and `lag.ts`.
 *
 * @module
 */
import process from "node:process";
import { Kafka, type KafkaConfig, logLevel, Partitioners, type Producer } from "kafkajs";
import type { Logger } from "../../shared/logger.ts";

export type { Admin, Batch, Consumer, EachBatchPayload, Kafka, Producer } from "kafkajs";

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
    "event_id (docs/guarantees.md)",
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

/** Options of {@link createProducer}. */
export interface ProducerOptions {
  /**
   * Idempotent, with one request in flight: the broker drops the copies its own retries would
   * add, and records keep their order. @default false
   */
  idempotent?: boolean;
}

/** A producer that never creates topics and partitions by key as the Java client does. */
export function createProducer(kafka: Kafka, options: ProducerOptions = {}): Producer {
  return kafka.producer({
    ...(options.idempotent ? { idempotent: true, maxInFlightRequests: 1 } : {}),
    allowAutoTopicCreation: false,
    // kafkajs 2's default (murmur2 of the key, as Java's), named so it does not warn at start.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
}
