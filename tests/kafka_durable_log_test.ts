/**
 * The durable log contract (`durable_log_contract.ts`) run against Kafka: {@link KafkaEventLog} and
 * {@link KafkaInput} on the real broker (`scripts/kafka.sh`), each test with its own 3-partition
 * topic and consumer group. The broker must be reachable: these tests fail, never skip, without it.
 *
 * @module
 */
import type { LogRecord } from "../pipeline/durable_log.ts";
import { createKafka, quietNegativeTimeouts } from "../pipeline/kafka/client.ts";
import { KafkaEventLog } from "../pipeline/kafka/event_log.ts";
import { KafkaInput } from "../pipeline/kafka/input.ts";
import { createLogger } from "../shared/logger.ts";
import { durableLogContract, type DurableLogPair, logPair } from "./durable_log_contract.ts";
import { BROKERS, createTopics, kafka } from "./kafka_helpers.ts";

const PARTITIONS = 3;

// The test's own kafkajs client (kafka_helpers.ts) would print kafkajs#1751's warning otherwise.
quietNegativeTimeouts();

/** Reads every record of `topic` with a consumer group of its own, up to the high watermarks. */
async function readAll(topic: string): Promise<LogRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  let total = 0;
  try {
    for (const p of await admin.fetchTopicOffsets(topic)) total += Number(p.high) - Number(p.low);
  } finally {
    await admin.disconnect();
  }
  const records: LogRecord[] = [];
  if (total === 0) return records;
  const consumer = kafka.consumer({ groupId: `${topic}-reader-${crypto.randomUUID()}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let done!: () => void;
    const all = new Promise<void>((resolve) => done = resolve);
    await consumer.run({
      eachMessage: ({ partition, message }) => {
        records.push({
          topic,
          partition,
          offset: Number(message.offset),
          timestampMs: Number(message.timestamp),
          value: new Uint8Array(message.value ?? []),
        });
        if (records.length >= total) done();
        return Promise.resolve();
      },
    });
    const timeout = setTimeout(done, 30_000);
    await all;
    clearTimeout(timeout);
  } finally {
    await consumer.disconnect();
  }
  return records.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

durableLogContract("Kafka", async () => {
  const topic = `it-durable-log-${crypto.randomUUID().slice(0, 8)}`;
  await createTopics([{ topic, numPartitions: PARTITIONS }]);
  const client = createKafka({
    brokers: BROKERS.split(","),
    clientId: "streamgate-durable-log-test",
    connectionTimeoutMs: 3000,
    logger: createLogger({ write: () => {} }),
  });
  const pairs: DurableLogPair[] = [];
  return {
    async open(options = {}) {
      const log = await KafkaEventLog.connect(client, {
        topic,
        maxBatch: 1000,
        maxPending: options.maxPending ?? 10_000,
      });
      // One group for the fixture: a restart resumes from the offsets the last pair committed.
      const input = new KafkaInput(client, {
        groupId: `${topic}-group`,
        topics: [topic],
        fromBeginning: true,
        sessionTimeoutMs: 6000,
      });
      const pair = logPair(log, input);
      pairs.push(pair);
      return pair;
    },
    stored: () => readAll(topic),
    async cleanup() {
      for (const pair of pairs) await pair.close();
      const admin = kafka.admin();
      await admin.connect();
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    },
  };
});
