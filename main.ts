/**
 * The composition root: configuration → clients → app, inputs and outputs. The only file that
 * serves, consumes or schedules. Nothing imports it; tests build the parts directly or run this
 * file as a process.
 *
 * @module
 */
import { type Config, ConfigError, consumedTopics, fraudThresholds, loadConfig } from "./config.ts";
import { LakeAlertSink } from "./lake/alerts.ts";
import { BronzeWriter } from "./lake/bronze.ts";
import { LakeEngine } from "./lake/engine.ts";
import { FileDeadLetterSink } from "./pipeline/dead_letter_file.ts";
import { Ingestor } from "./pipeline/ingest.ts";
import {
  AlertPipeline,
  type AlertSink,
  FraudProcessor,
  LogAlertSink,
} from "./pipeline/fraud/alerts.ts";
import { FraudDetector } from "./pipeline/fraud/detector.ts";
import { LlmJudge } from "./pipeline/fraud/ollama.ts";
import { UpstashWindowStore } from "./pipeline/fraud/upstash.ts";
import { MemoryWindowStore, type WindowStore } from "./pipeline/fraud/windows.ts";
import {
  createKafka,
  KafkaAlertSink,
  KafkaDeadLetterSink,
  KafkaEventLog,
  KafkaInput,
} from "./pipeline/kafka.ts";
import { LakeLoader } from "./pipeline/lake_loader.ts";
import type { DeadLetterSink, EventLog, LogInput } from "./pipeline/log.ts";
import { createLogger } from "./pipeline/logger.ts";
import type { ValidationOptions } from "./pipeline/validate.ts";
import { Wal, WAL_TOPIC, WalEventLog, WalInput } from "./pipeline/wal.ts";
import { createApp } from "./routes/app.ts";
import type { ReadinessCheck } from "./routes/health.ts";

function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    Deno.exit(2);
  }
}
const config = configOrExit();
const logger = createLogger({ level: config.LOG_LEVEL });

const validation: ValidationOptions = {
  unknownTypes: config.UNKNOWN_TYPES,
  maxPastMs: config.EVENT_MAX_PAST_DAYS * 86_400_000,
  maxFutureMs: config.EVENT_MAX_FUTURE_SECONDS * 1000,
};

const engine = new LakeEngine();
const bronze = new BronzeWriter(engine, config.LAKE_DIR);
const checks: ReadinessCheck[] = [];
let log: EventLog, deadLetters: DeadLetterSink, input: LogInput;
const alertSinks: AlertSink[] = [
  new LogAlertSink(logger),
  new LakeAlertSink(engine, config.LAKE_DIR),
];
let drainInput: (timeoutMs: number) => Promise<unknown> = () => Promise.resolve();

if (config.mode === "embedded") {
  const wal = await Wal.open(config.WAL_DIR, {
    maxBatch: config.GROUP_COMMIT_MAX_EVENTS,
    maxPending: config.INGEST_MAX_PENDING_EVENTS,
  });
  const walInput = new WalInput(wal, await bronze.committedOffset(WAL_TOPIC, 0), {
    onError: (err) => logger.error("Reading the WAL failed; retrying", { err }),
  });
  log = new WalEventLog(wal, () => walInput.committed, {
    maxLagEvents: config.INGEST_MAX_LAG_EVENTS,
  });
  deadLetters = new FileDeadLetterSink(config.DEAD_LETTER_DIR);
  input = walInput;
  drainInput = (ms) => walInput.drain(ms);
  logger.info("Embedded mode: HTTP → WAL → lake", {
    wal: config.WAL_DIR,
    wal_next_offset: wal.nextOffset,
  });
} else {
  const kafka = createKafka({
    brokers: config.KAFKA_BROKERS!,
    clientId: config.KAFKA_CLIENT_ID,
    connectionTimeoutMs: config.KAFKA_CONNECT_TIMEOUT_MS,
    logger,
  });
  log = await KafkaEventLog.connect(kafka, {
    topic: config.KAFKA_TOPIC_EVENTS,
    maxBatch: config.GROUP_COMMIT_MAX_EVENTS,
    maxPending: config.INGEST_MAX_PENDING_EVENTS,
  });
  deadLetters = await KafkaDeadLetterSink.connect(kafka, config.KAFKA_TOPIC_DEAD_LETTER);
  if (config.FRAUD_SCORING) {
    alertSinks.push(await KafkaAlertSink.connect(kafka, config.KAFKA_TOPIC_ALERTS));
  }
  input = new KafkaInput(kafka, {
    groupId: config.KAFKA_GROUP_ID,
    topics: consumedTopics(config),
    fromBeginning: config.KAFKA_FROM_BEGINNING,
    sessionTimeoutMs: config.KAFKA_SESSION_TIMEOUT_MS,
  });
  logger.info("Kafka mode: HTTP → Kafka → lake", {
    brokers: config.KAFKA_BROKERS,
    topics: consumedTopics(config),
  });
}

// Fraud scoring: windows in Upstash/Redis or in memory, rules, and an LLM verdict when configured.
let windows: WindowStore | undefined, detector: FraudDetector | undefined;
let judge: LlmJudge | undefined, alerts: AlertPipeline | undefined;
if (config.FRAUD_SCORING) {
  windows = config.UPSTASH_REDIS_REST_URL
    ? new UpstashWindowStore({
      url: config.UPSTASH_REDIS_REST_URL,
      token: config.UPSTASH_REDIS_REST_TOKEN!,
      timeoutMs: config.WINDOW_TIMEOUT_MS,
    })
    : new MemoryWindowStore({ maxKeys: config.WINDOW_MEMORY_MAX_KEYS });
  const store = windows;
  checks.push({
    name: `windows (${store.kind})`,
    critical: false,
    probe: async () => (await store.ping(), { state: "ok" }),
  });
  detector = new FraudDetector(store, {
    thresholds: fraudThresholds(config),
    cooldownMs: config.FRAUD_COOLDOWN_MS,
  });
  if (config.OLLAMA_HOST) {
    const llm = new LlmJudge({
      host: config.OLLAMA_HOST,
      model: config.OLLAMA_MODEL,
      timeoutMs: config.OLLAMA_TIMEOUT_MS,
      concurrency: config.OLLAMA_CONCURRENCY,
      cooldownMs: config.FRAUD_COOLDOWN_MS,
    });
    judge = llm;
    checks.push({
      name: "ollama",
      critical: false,
      probe: async () =>
        llm.state.breaker === "open"
          ? { state: "degraded", detail: "circuit open: alerts go out on rules only" }
          : (await llm.ping(), { state: "ok" }),
    });
  }
  alerts = new AlertPipeline(judge, alertSinks, logger);
  logger.info("Fraud scoring on", {
    windows: store.kind,
    llm: config.OLLAMA_HOST ? config.OLLAMA_MODEL : "off (rules only)",
  });
}

const loader = new LakeLoader(bronze, deadLetters, {
  validation,
  ...(detector && alerts ? { processor: new FraudProcessor(detector, alerts) } : {}),
  flushRows: config.LAKE_FLUSH_ROWS,
  flushBytes: config.LAKE_FLUSH_BYTES,
  flushIntervalMs: config.LAKE_FLUSH_INTERVAL_MS,
  commit: (topic, partition, next) => input.commit(topic, partition, next),
  onError: (err) => logger.error("Lake flush failed; will retry", { err }),
  onFlush: (batch, result, ms) =>
    logger.debug("Bronze batch written", {
      topic: batch.topic,
      partition: batch.partition,
      first_offset: batch.firstOffset,
      last_offset: batch.lastOffset,
      rows: result.rows,
      skipped: result.skipped,
      files: result.files.length,
      ms: Math.round(ms),
    }),
});
await input.start(loader);

const ingestor = new Ingestor(log, deadLetters, {
  validation,
  timeoutMs: config.INGEST_TIMEOUT_MS,
});
const app = createApp({
  ingestor,
  logger,
  limits: {
    maxBytes: config.MAX_BODY_BYTES,
    maxEvents: config.MAX_EVENTS_PER_REQUEST,
    maxDepth: config.MAX_JSON_DEPTH,
  },
  readiness: checks,
  ...(detector ? { score: { detector, validation } } : {}),
});

// Listen for signals before announcing the port: a supervisor may stop us the moment we listen.
Deno.addSignalListener("SIGTERM", () => void shutdown("SIGTERM"));
Deno.addSignalListener("SIGINT", () => void shutdown("SIGINT"));

const server = Deno.serve({
  port: config.PORT,
  hostname: config.HOSTNAME,
  onListen: ({ hostname, port }) => logger.info("Listening", { hostname, port, mode: config.mode }),
}, app.fetch);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info("Shutting down", { signal });
  const deadline = setTimeout(() => {
    logger.error("Shutdown did not finish in time", { timeout_ms: config.SHUTDOWN_TIMEOUT_MS });
    Deno.exit(1);
  }, config.SHUTDOWN_TIMEOUT_MS);
  try {
    await server.shutdown(); // stop accepting; in-flight requests finish
    await log.close(); // every acknowledged event is durable in the log
    await drainInput(Math.max(0, config.SHUTDOWN_TIMEOUT_MS - 2000));
    await input.stop();
    await loader.close(); // flush buffers to bronze, commit offsets
    await input.close();
    await deadLetters.close();
    await judge?.close();
    await alerts?.close();
    await windows?.close();
    engine.close();
    clearTimeout(deadline);
    logger.info("Stopped", { ...loader.stats });
    Deno.exit(0);
  } catch (err) {
    logger.error("Shutdown failed", { err });
    Deno.exit(1);
  }
}
