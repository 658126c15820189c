/**
 * Consumer lag of a group, read from the broker: what the lake does not have yet.
 *
 * @module
 */
import type { PartitionLag } from "../../shared/metrics.ts";
import type { Admin, Kafka } from "./client.ts";

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
