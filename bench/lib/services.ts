/**
 * The services the benchmarks need, started when they are not running and stopped afterwards only
 * if the benchmark started them: Kafka through `scripts/kafka.sh`, Redis as `scripts/test.sh` does.
 * Also Kafka's own performance tools (the limits the Kafka figures are put beside) and the topic
 * and consumer-group plumbing, with kafkajs.
 *
 * @module
 */
import { join } from "node:path";
import { type Consumer, Kafka, logLevel } from "kafkajs";
import type { ClientEvent } from "../../scripts/events_gen.ts";
import { gatewayRecords } from "./events.ts";
import { type Gateway, onCleanup, ROOT, run, sleep, startMain, tempDir } from "./proc.ts";

export const BROKERS = Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092";

const KAFKA_SH = join(ROOT, "scripts", "kafka.sh");

const S3PROXY_SH = join(ROOT, "scripts", "s3proxy.sh");

/** The local S3 server (`scripts/s3proxy.sh`, its defaults) and the benchmarks' bucket. */
export const S3 = {
  endpoint: `http://127.0.0.1:${Deno.env.get("S3PROXY_PORT") ?? "9000"}`,
  region: "us-east-1",
  accessKeyId: Deno.env.get("S3PROXY_IDENTITY") ?? "streamgate",
  secretAccessKey: Deno.env.get("S3PROXY_CREDENTIAL") ?? "streamgate-secret-key",
  bucket: "streamgate-bench",
};

/** Starts s3proxy unless it answers (stopped at cleanup only if started here); makes the bucket. */
export async function ensureS3proxy(): Promise<{ started: boolean }> {
  const status = await run("bash", [S3PROXY_SH, "status"], { allowFail: true });
  let started = false;
  if (status.code !== 0) {
    console.error("bench: starting s3proxy (scripts/s3proxy.sh start)");
    await run("bash", [S3PROXY_SH, "start"]);
    started = true;
    onCleanup("s3proxy", () => run("bash", [S3PROXY_SH, "stop"], { allowFail: true }));
  }
  await run("bash", [S3PROXY_SH, "wait"]);
  await run("bash", [S3PROXY_SH, "bucket", S3.bucket]);
  return { started };
}

/** Starts the local broker unless one answers; stops it at cleanup only if it was started here. */
export async function ensureKafka(): Promise<{ started: boolean }> {
  const status = await run("bash", [KAFKA_SH, "status"], { allowFail: true });
  let started = false;
  if (status.code !== 0) {
    console.error("bench: starting Kafka (scripts/kafka.sh start)");
    await run("bash", [KAFKA_SH, "start"]);
    started = true;
    onCleanup("Kafka", () => run("bash", [KAFKA_SH, "stop"], { allowFail: true }));
  }
  await run("bash", [KAFKA_SH, "wait"]);
  return { started };
}

/** Starts redis-server (installing it as root if needed) unless Redis answers on 6379. */
export async function ensureRedis(): Promise<{ started: boolean }> {
  const up = async () =>
    (await run("redis-cli", ["-h", "127.0.0.1", "-p", "6379", "ping"], { allowFail: true })
      .catch(() => ({ stdout: "" }))).stdout.includes("PONG");
  if (await up()) return { started: false };
  const has = await run("sh", ["-c", "command -v redis-server"], { allowFail: true });
  if (has.code !== 0) {
    if (Deno.uid() !== 0) throw new Error("Redis is not running and redis-server is not installed");
    console.error("bench: installing redis-server");
    await run("sh", ["-c", "apt-get update -qq && apt-get install -y -qq redis-server"]);
  }
  const pidFile = join(await Deno.makeTempDir({ prefix: "bench_redis_" }), "redis.pid");
  await run("redis-server", [
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--pidfile",
    pidFile,
  ]);
  for (let i = 0; i < 50 && !await up(); i++) await sleep(100);
  if (!await up()) throw new Error("Redis did not come up");
  onCleanup("Redis", async () => {
    const pid = Number(await Deno.readTextFile(pidFile));
    if (pid > 0) Deno.kill(pid, "SIGTERM");
  });
  return { started: true };
}

export const kafka = new Kafka({
  brokers: BROKERS.split(","),
  clientId: "streamgate-bench",
  logLevel: logLevel.NOTHING,
  connectionTimeout: 5000,
  retry: { retries: 5 },
});

/** Topics of one benchmark, deleted at cleanup. */
/**
 * A kafkajs consumer with the worker's fetch settings, in a group of its own (`<topic>-<tag>-…`),
 * connected and subscribed to `topic` from its start: the consumer alone, for limits.
 */
export async function bareConsumer(topic: string, tag: string): Promise<Consumer> {
  const consumer = kafka.consumer({
    groupId: `${topic}-${tag}-${crypto.randomUUID().slice(0, 6)}`,
    maxBytesPerPartition: 4 * 1024 * 1024,
    maxBytes: 32 * 1024 * 1024,
    maxWaitTimeInMs: 500,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  return consumer;
}

/**
 * A worker (`ROLE=worker`) consuming `topic` into bronze under `lakeDir`, in group `<id>-group`,
 * with dead letters and alerts on `<id>-dlq` and `<id>-alerts`.
 */
export function startKafkaWorker(id: string, topic: string, lakeDir: string): Promise<Gateway> {
  return startMain({
    ROLE: "worker",
    KAFKA_BROKERS: BROKERS,
    KAFKA_TOPIC_EVENTS: topic,
    KAFKA_TOPIC_DEAD_LETTER: `${id}-dlq`,
    KAFKA_TOPIC_ALERTS: `${id}-alerts`,
    KAFKA_GROUP_ID: `${id}-group`,
    LAKE_DIR: lakeDir,
  });
}

export async function createTopics(specs: [name: string, partitions: number][]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: specs.map(([topic, numPartitions]) => ({
        topic,
        numPartitions,
        replicationFactor: 1,
      })),
    });
  } finally {
    await admin.disconnect();
  }
  onCleanup(`topics ${specs.map(([t]) => t).join(", ")}`, async () => {
    const a = kafka.admin();
    await a.connect();
    try {
      await a.deleteTopics({ topics: specs.map(([t]) => t) });
    } finally {
      await a.disconnect();
    }
  });
}

/** A consumer group's position on a topic: committed offsets, end offsets and their difference. */
export interface GroupPosition {
  committed: number;
  end: number;
  lag: number;
}

/** Reads a group's lag on a topic with one admin client. */
export class LagProbe {
  readonly #admin = kafka.admin();
  readonly #group: string;
  readonly #topic: string;

  constructor(group: string, topic: string) {
    this.#group = group;
    this.#topic = topic;
  }

  async connect(): Promise<void> {
    await this.#admin.connect();
  }

  async read(): Promise<GroupPosition> {
    const [ends, groups] = await Promise.all([
      this.#admin.fetchTopicOffsets(this.#topic),
      this.#admin.fetchOffsets({ groupId: this.#group, topics: [this.#topic] }),
    ]);
    const low = new Map(ends.map((p) => [p.partition, Number(p.low)]));
    let committed = 0, end = 0;
    for (const p of ends) end += Number(p.high) - Number(p.low);
    for (const p of groups[0]?.partitions ?? []) {
      const c = Number(p.offset);
      committed += c < 0 ? 0 : c - (low.get(p.partition) ?? 0);
    }
    return { committed, end, lag: end - committed };
  }

  async close(): Promise<void> {
    await this.#admin.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// Kafka's own performance tools, from the broker's jars (scripts/kafka.sh fetches them).

async function kafkaClasspath(): Promise<string> {
  const pom = await Deno.readTextFile(join(ROOT, "scripts", "kafka", "pom.xml"));
  const version = Deno.env.get("KAFKA_VERSION") ??
    /<kafka\.version>(.*?)<\/kafka\.version>/.exec(pom)?.[1];
  const state = Deno.env.get("KAFKA_STATE_DIR") ?? join(ROOT, ".kafka");
  const libs = join(state, `libs-${version}`);
  try {
    await Deno.stat(join(libs, ".complete"));
  } catch {
    await run("bash", [KAFKA_SH, "fetch"]);
  }
  return `${libs}/*`;
}

const TOOL_JVM = ["-Xmx768m", "-XX:+UseSerialGC"];

/** What ProducerPerformance printed last. */
export interface ProducerPerfResult {
  records: number;
  recordsPerSec: number;
  mbPerSec: number;
  avgLatencyMs: number;
  p99LatencyMs: number;
}

/**
 * Kafka's ProducerPerformance, acks=all: either `recordSize` random bytes, or records drawn from
 * `payloadFile` (one per line). Extra producer properties as `key=value`.
 */
export async function producerPerf(
  topic: string,
  records: number,
  source: { recordSize: number } | { payloadFile: string },
  props: string[] = [],
): Promise<ProducerPerfResult> {
  const cp = await kafkaClasspath();
  const { stdout } = await run("java", [
    ...TOOL_JVM,
    "-cp",
    cp,
    "org.apache.kafka.tools.ProducerPerformance",
    "--topic",
    topic,
    "--num-records",
    String(records),
    "--throughput",
    "-1",
    ...("recordSize" in source
      ? ["--record-size", String(source.recordSize)]
      : ["--payload-file", source.payloadFile]),
    "--producer-props",
    `bootstrap.servers=${BROKERS}`,
    "acks=all",
    ...props,
  ]);
  // "200000 records sent, 101112.2 records/sec (28.93 MB/sec), 512.3 ms avg latency, 900.0 ms max
  //  latency, 480 ms 50th, 870 ms 95th, 890 ms 99th, 899 ms 99.9th."
  const last = stdout.trim().split("\n").filter((l) => l.includes("records sent")).at(-1) ?? "";
  const m =
    /(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency.*?(\d+) ms 99th/
      .exec(last);
  if (!m) throw new Error(`Cannot read ProducerPerformance output: ${stdout.slice(-500)}`);
  return {
    records: Number(m[1]),
    recordsPerSec: Number(m[2]),
    mbPerSec: Number(m[3]),
    avgLatencyMs: Number(m[4]),
    p99LatencyMs: Number(m[5]),
  };
}

/** What ConsumerPerformance measured. */
export interface ConsumerPerfResult {
  records: number;
  mb: number;
  /** Over the whole run, group join included. */
  recordsPerSec: number;
  /** Over the fetch time only. */
  fetchRecordsPerSec: number;
  fetchMBps: number;
}

/** Kafka's ConsumerPerformance: reads `records` records of `topic` with a new group. */
export async function consumerPerf(topic: string, records: number): Promise<ConsumerPerfResult> {
  const cp = await kafkaClasspath();
  const { stdout } = await run("java", [
    ...TOOL_JVM,
    "-cp",
    cp,
    "org.apache.kafka.tools.ConsumerPerformance",
    "--bootstrap-server",
    BROKERS,
    "--topic",
    topic,
    "--num-records",
    String(records),
    "--group",
    `bench-perf-${crypto.randomUUID().slice(0, 8)}`,
    "--timeout",
    "30000",
  ]);
  // header: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
  //         rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
  const lines = stdout.trim().split("\n");
  const header = lines.findIndex((l) => l.includes("nMsg.sec"));
  const cols = header >= 0 ? lines[header]!.split(",").map((s) => s.trim()) : [];
  const vals = header >= 0 ? (lines[header + 1] ?? "").split(",").map((s) => s.trim()) : [];
  const get = (name: string) => Number(vals[cols.indexOf(name)]);
  if (!Number.isFinite(get("fetch.nMsg.sec"))) {
    throw new Error(`Cannot read ConsumerPerformance output: ${stdout.slice(-500)}`);
  }
  return {
    records: get("data.consumed.in.nMsg"),
    mb: get("data.consumed.in.MB"),
    recordsPerSec: get("nMsg.sec"),
    fetchRecordsPerSec: get("fetch.nMsg.sec"),
    fetchMBps: get("fetch.MB.sec"),
  };
}

/**
 * Fills `topic` with `total` of the gateway's records drawn from `events` at random (Kafka's own
 * producer: the fastest way to fill it); also gives the records, as envelopes and encoded.
 */
export async function prefillTopic(topic: string, total: number, events: readonly ClientEvent[]) {
  const dir = await tempDir("fill");
  const { envelopes, encoded } = gatewayRecords(events);
  const file = join(dir, "payloads.ndjson");
  const dec = new TextDecoder();
  await Deno.writeTextFile(file, encoded.map((e) => dec.decode(e)).join("\n"));
  const fill = await producerPerf(topic, total, { payloadFile: file }, [
    "linger.ms=20",
    "batch.size=524288",
    "compression.type=none",
  ]);
  return { fill, envelopes, encoded };
}
