/**
 * Helpers of the integration tests against the real broker (`scripts/kafka.sh`): per-test topics
 * and lake directory, reading and producing topics. The broker must be reachable: a test that
 * needs it fails, never skips, without it.
 *
 * @module
 */
import { join } from "node:path";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { LakeEngine } from "../lake/engine/engine.ts";

export const BROKERS = Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092";
export const kafka = new Kafka({
  brokers: BROKERS.split(","),
  clientId: "streamgate-tests",
  logLevel: logLevel.NOTHING,
  connectionTimeout: 3000,
  retry: { retries: 3 },
});

export interface Setup {
  root: string;
  events: string;
  dlq: string;
  alerts: string;
  env: Record<string, string>;
  engine: LakeEngine;
}

/** Creates topics (replication 1) on the test broker, waiting for their leaders. */
export async function createTopics(
  topics: { topic: string; numPartitions: number }[],
): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(`Kafka is not reachable at ${BROKERS}: start it with 'deno task kafka:start'`, {
      cause: err,
    });
  }
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: topics.map((t) => ({ ...t, replicationFactor: 1 })),
    });
  } finally {
    await admin.disconnect();
  }
}

export async function setup(name: string, partitions = 3): Promise<Setup> {
  const id = `it-${name}-${crypto.randomUUID().slice(0, 8)}`;
  await createTopics([
    { topic: `${id}-events`, numPartitions: partitions },
    { topic: `${id}-dlq`, numPartitions: 1 },
    { topic: `${id}-alerts`, numPartitions: 1 },
  ]);
  const root = await Deno.makeTempDir({ prefix: "kafka_it_" });
  return {
    root,
    events: `${id}-events`,
    dlq: `${id}-dlq`,
    alerts: `${id}-alerts`,
    engine: new LakeEngine(),
    env: {
      KAFKA_BROKERS: BROKERS,
      KAFKA_TOPIC_EVENTS: `${id}-events`,
      KAFKA_TOPIC_DEAD_LETTER: `${id}-dlq`,
      KAFKA_TOPIC_ALERTS: `${id}-alerts`,
      KAFKA_GROUP_ID: `${id}-group`,
      LAKE_DIR: join(root, "lake"),
      LAKE_FLUSH_INTERVAL_MS: "500",
      // The broker's minimum: a SIGKILLed member gives its partitions up after 6 s, not 30 s.
      KAFKA_SESSION_TIMEOUT_MS: "6000",
    },
  };
}

export async function teardown(s: Setup): Promise<void> {
  s.engine.close();
  await removeDir(s.root);
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [s.events, s.dlq, s.alerts] }).catch(() => {});
  await admin.disconnect();
}

/** Removes a test directory; retries briefly in case a just-killed writer's files are settling. */
export async function removeDir(path: string): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      return await Deno.remove(path, { recursive: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

export interface DlqMessage {
  value: Uint8Array;
  headers: Record<string, string>;
}

/** Reads `count` messages of a topic from the beginning. */
export async function readTopic(
  topic: string,
  count: number,
  timeoutMs = 30_000,
): Promise<DlqMessage[]> {
  const consumer = kafka.consumer({
    groupId: `reader-${crypto.randomUUID()}`,
    maxWaitTimeInMs: 200,
  });
  const out: DlqMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let done: () => void;
    const got = new Promise<void>((r) => done = r);
    await consumer.run({
      eachMessage: ({ message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        out.push({ value: new Uint8Array(message.value ?? []), headers });
        if (out.length >= count) done();
        return Promise.resolve();
      },
    });
    await Promise.race([got, new Promise((r) => setTimeout(r, timeoutMs))]);
  } finally {
    await consumer.disconnect();
  }
  return out;
}

/** Produces values with acks=-1; `keyOf` picks each message's key (default: spread over 50). */
export async function produce(
  topic: string,
  values: (Uint8Array | string)[],
  keyOf: (index: number) => string = (i) => `k${i % 50}`,
): Promise<void> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    for (let i = 0; i < values.length; i += 1000) {
      await producer.send({
        topic,
        acks: -1,
        messages: values.slice(i, i + 1000).map((v, k) => ({
          key: keyOf(i + k),
          value: typeof v === "string" ? v : Buffer.from(v),
        })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}
