/**
 * The composition root: configuration → clients → app, inputs and outputs. The only file that
 * serves, consumes or schedules. Nothing imports it; tests build the parts directly or run this
 * file as a process.
 *
 * Roles (`ROLE`): `gateway` takes events over HTTP into Kafka and needs no disk; `worker` consumes
 * Kafka into the lake, scores fraud, runs the lake jobs and answers queries; `all` is both (the
 * only role of the embedded mode, where the log is a local WAL instead of Kafka).
 *
 * @module
 */
import {
  type Config,
  ConfigError,
  consumedTopics,
  fraudThresholds,
  lakeUrl,
  loadConfig,
  s3Options,
} from "./config.ts";
import { LakeAlertSink } from "./lake/alerts.ts";
import { BronzeWriter } from "./lake/bronze.ts";
import { lakeLocation, openStore } from "./lake/storage/open.ts";
import { probeStore } from "./lake/storage/probe.ts";
import { STALLED, StallingStore } from "./lake/storage/stall.ts";
import { LakeEngine } from "./lake/engine/engine.ts";
import { LakeJobs } from "./lake/jobs.ts";
import { Lake } from "./lake/lake.ts";
import { LakeQuery } from "./lake/query/query.ts";
import { FileDeadLetterSink } from "./pipeline/wal/dead_letter_file.ts";
import { Ingestor } from "./pipeline/ingest.ts";
import { AlertPipeline } from "./pipeline/fraud/alert_pipeline.ts";
import { type AlertSink, LogAlertSink } from "./pipeline/fraud/sinks.ts";
import { FraudProcessor } from "./pipeline/fraud/processor.ts";
import { FraudDetector } from "./pipeline/fraud/detector.ts";
import { LlmJudge } from "./pipeline/fraud/llm/llm_judge.ts";
import { UpstashWindowStore } from "./pipeline/fraud/upstash.ts";
import { MemoryWindowStore, type WindowStore } from "./pipeline/fraud/windows.ts";
import { createKafka } from "./pipeline/kafka/client.ts";
import { KafkaAlertSink } from "./pipeline/kafka/alert_sink.ts";
import { KafkaDeadLetterSink } from "./pipeline/kafka/dead_letter_sink.ts";
import { KafkaEventLog } from "./pipeline/kafka/event_log.ts";
import { KafkaInput } from "./pipeline/kafka/input.ts";
import { KafkaLag } from "./pipeline/kafka/lag.ts";
import { LakeLoader } from "./pipeline/lake_loader.ts";
import type { DeadLetterSink, EventLog, LogInput } from "./pipeline/durable_log.ts";
import { createLogger } from "./shared/logger.ts";
import { eventRecordJsonSchema } from "./shared/schemas.ts";
import { alertJsonSchema } from "./shared/alert.ts";
import { instrumentLakeJobs, type LagProbe, Metrics } from "./shared/metrics.ts";
import { walLagProbe } from "./pipeline/wal/input.ts";
import {
  MemoryRateLimiter,
  type RateLimiter,
  RateLimitGuard,
} from "./routes/ratelimit/ratelimit.ts";
import { UpstashRateLimiter } from "./routes/ratelimit/upstash.ts";
import type { ValidationOptions } from "./pipeline/validate.ts";
import type { SchemaRegistryClient, TopicSchema } from "./pipeline/kafka/schema_registry.ts";
import { Wal, WAL_TOPIC } from "./pipeline/wal/wal.ts";
import { WalEventLog } from "./pipeline/wal/event_log.ts";
import { WalInput } from "./pipeline/wal/input.ts";
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
const ingests = config.ROLE !== "worker"; // POST /events
const works = config.ROLE !== "gateway"; // log → lake, scoring, jobs, queries

const validation: ValidationOptions = {
  unknownTypes: config.UNKNOWN_TYPES,
  maxPastMs: config.EVENT_MAX_PAST_DAYS * 86_400_000,
  maxFutureMs: config.EVENT_MAX_FUTURE_SECONDS * 1000,
};

const checks: ReadinessCheck[] = [];
const metrics = new Metrics();
let lagProbe: LagProbe | undefined, kafkaLag: KafkaLag | undefined;

// The lake: one DuckDB engine for bronze and alert writes, one per job runner and query API, so
// a long merge or scan never holds up a flush (a DuckDB-wasm worker runs one call at a time).
const engine = works
  ? new LakeEngine({ recycleAfterRows: config.LAKE_WRITER_RECYCLE_ROWS })
  : undefined;
// Opened (created) once here; it refuses a LAKE_DIR that later vanishes rather than recreate it.
const location = lakeLocation(lakeUrl(config));
const opened = works ? await openStore(location, s3Options(config)) : undefined;
const stall = config.LAKE_TEST_STALL;
const store = opened && stall
  ? new StallingStore(opened, stall, (key) => logger.warn(STALLED, { point: stall, key }))
  : opened;
// One snapshot of each table for the whole process; the ingest engine reads and writes their
// checkpoints.
const lake = engine && store && new Lake(store, engine, {
  checkpointInterval: config.LAKE_CHECKPOINT_INTERVAL,
  tombstoneRetentionMs: config.LAKE_RETENTION_HOURS * 3_600_000,
  onCheckpointError: (err) => logger.warn("Writing a Delta checkpoint failed", { err }),
});
const bronze = engine && lake && new BronzeWriter(engine, lake.bronze);
if (store) {
  const name = location.kind === "local" ? "lake disk" : "lake store";
  checks.push({ name, critical: true, probe: () => probeStore(store) });
}

// The durable log and the dead-letter destination: Kafka, or the local WAL and NDJSON files.
let log: EventLog | undefined, deadLetters: DeadLetterSink, input: LogInput | undefined;
const alertSinks: AlertSink[] = [new LogAlertSink(logger)];
if (engine && lake) alertSinks.push(new LakeAlertSink(engine, lake.alerts));
let drainInput: (timeoutMs: number) => Promise<unknown> = () => Promise.resolve();
let registry: SchemaRegistryClient | undefined;

if (config.mode === "embedded") {
  const wal = await Wal.open(config.WAL_DIR, {
    maxBatch: config.GROUP_COMMIT_MAX_EVENTS,
    maxPending: config.INGEST_MAX_PENDING_EVENTS,
  });
  const walInput = new WalInput(wal, await bronze!.committedOffset(WAL_TOPIC, 0), {
    onError: (err) => logger.error("Reading the WAL failed; retrying", { err }),
  });
  log = new WalEventLog(wal, () => walInput.committed, {
    maxLagEvents: config.INGEST_MAX_LAG_EVENTS,
  });
  deadLetters = new FileDeadLetterSink(config.DEAD_LETTER_DIR);
  input = walInput;
  lagProbe = walLagProbe(wal, walInput);
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
  // Schema registry: register the value schemas of the topics this process produces to, before
  // anything is produced. The events and alerts records are framed with their ids; dead letters
  // keep the original bytes (docs/schema-registry.md). Loaded only when configured.
  if (config.SCHEMA_REGISTRY_URL) {
    const produced: TopicSchema[] = [];
    if (ingests) {
      produced.push({
        topic: config.KAFKA_TOPIC_EVENTS,
        schema: eventRecordJsonSchema(config.UNKNOWN_TYPES),
      });
    }
    if (works && config.FRAUD_SCORING) {
      produced.push({ topic: config.KAFKA_TOPIC_ALERTS, schema: alertJsonSchema() });
    }
    const sr = await import("./pipeline/kafka/schema_registry.ts");
    const client = new sr.SchemaRegistryClient({
      url: config.SCHEMA_REGISTRY_URL,
      auth: config.SCHEMA_REGISTRY_AUTH,
      compatibility: config.SCHEMA_REGISTRY_COMPATIBILITY,
      timeoutMs: config.SCHEMA_REGISTRY_TIMEOUT_MS,
      retryMs: config.SCHEMA_REGISTRY_RETRY_MS,
      logger,
    });
    // A refusal (an incompatible schema change, bad credentials, …) stops the process like a
    // configuration error, also when it comes from a retry after a registry that was down.
    const refused = (err: Error): never => {
      logger.error("The schema registry refused the start", { err: err.message });
      console.error(err.message);
      Deno.exit(2);
    };
    try {
      await client.register(produced, refused);
    } catch (err) {
      if (!(err instanceof sr.SchemaRegistryRefusedError)) throw err;
      refused(err);
    }
    registry = client;
    // Until every schema is registered, nothing can be produced: POST /events answers 503.
    checks.push({
      name: "schema registry",
      critical: ingests,
      probe: () => Promise.resolve(client.probe()),
    });
  }
  if (ingests) {
    log = await KafkaEventLog.connect(kafka, {
      topic: config.KAFKA_TOPIC_EVENTS,
      maxBatch: config.GROUP_COMMIT_MAX_EVENTS,
      maxPending: config.INGEST_MAX_PENDING_EVENTS,
      framer: registry?.framer(config.KAFKA_TOPIC_EVENTS),
    });
  }
  deadLetters = await KafkaDeadLetterSink.connect(kafka, config.KAFKA_TOPIC_DEAD_LETTER);
  if (works && config.FRAUD_SCORING) {
    alertSinks.push(
      await KafkaAlertSink.connect(
        kafka,
        config.KAFKA_TOPIC_ALERTS,
        registry?.framer(config.KAFKA_TOPIC_ALERTS),
      ),
    );
  }
  if (works) {
    const consumer = new KafkaInput(kafka, {
      groupId: config.KAFKA_GROUP_ID,
      topics: consumedTopics(config),
      fromBeginning: config.KAFKA_FROM_BEGINNING,
      sessionTimeoutMs: config.KAFKA_SESSION_TIMEOUT_MS,
      onJoin: (partitions, memberId) =>
        logger.info("Joined the consumer group", {
          group: config.KAFKA_GROUP_ID,
          member_id: memberId,
          partitions,
        }),
      onRestart: (err, retryMs) =>
        logger.error("The Kafka consumer crashed and kafkajs gave up on it; restarting it", {
          err,
          retry_ms: retryMs,
        }),
    });
    input = consumer;
    // Not critical: HTTP is served while the member rejoins; the lag metrics show what waits.
    checks.push({
      name: "kafka consumer",
      critical: false,
      probe: () => {
        const down = consumer.down;
        return Promise.resolve(down ? { state: "down", detail: down } : { state: "ok" });
      },
    });
    const lag = new KafkaLag(kafka, {
      groupId: config.KAFKA_GROUP_ID,
      topics: consumedTopics(config),
    });
    kafkaLag = lag;
    lagProbe = () => lag.read();
  }
  logger.info(`Kafka mode, role ${config.ROLE}`, {
    brokers: config.KAFKA_BROKERS,
    schema_registry: config.SCHEMA_REGISTRY_URL ?? "off (bare JSON)",
    ...(ingests ? { produces_to: config.KAFKA_TOPIC_EVENTS } : {}),
    ...(works ? { consumes: consumedTopics(config) } : {}),
  });
}

// Fraud scoring: windows in Upstash/Redis or in memory, rules, and an LLM verdict when configured.
// Workers score every event; a gateway only answers POST /score, and only with shared windows
// (its own in-memory windows would see a fraction of the traffic).
const scores = config.FRAUD_SCORING && (works || config.UPSTASH_REDIS_REST_URL !== undefined);
let windows: WindowStore | undefined, detector: FraudDetector | undefined;
let judge: LlmJudge | undefined, alerts: AlertPipeline | undefined;
if (scores) {
  const store: WindowStore = config.UPSTASH_REDIS_REST_URL
    ? new UpstashWindowStore({
      url: config.UPSTASH_REDIS_REST_URL,
      token: config.UPSTASH_REDIS_REST_TOKEN!,
      timeoutMs: config.WINDOW_TIMEOUT_MS,
    })
    : new MemoryWindowStore({ maxKeys: config.WINDOW_MEMORY_MAX_KEYS });
  windows = store;
  checks.push({
    name: `windows (${store.kind})`,
    critical: false,
    probe: async () => (await store.ping(), { state: "ok" }),
  });
  detector = new FraudDetector(store, {
    thresholds: fraudThresholds(config),
    cooldownMs: config.FRAUD_COOLDOWN_MS,
    metrics,
    onStoreChange: (down) =>
      down
        ? logger.warn("Fraud scoring degraded: stateless rules only until the windows answer", {
          windows: store.kind,
          reason: down,
        })
        : logger.info("Fraud scoring windows answer again", { windows: store.kind }),
  });
  if (works && config.OLLAMA_HOST) {
    const llm = new LlmJudge({
      host: config.OLLAMA_HOST,
      model: config.OLLAMA_MODEL,
      timeoutMs: config.OLLAMA_TIMEOUT_MS,
      concurrency: config.OLLAMA_CONCURRENCY,
      cooldownMs: config.FRAUD_COOLDOWN_MS,
      metrics,
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
  if (works) alerts = new AlertPipeline(judge, alertSinks, logger, { metrics });
  logger.info("Fraud scoring on", {
    windows: store.kind,
    scores: works ? "every event" : "POST /score only",
    llm: judge ? config.OLLAMA_MODEL : "off (rules only)",
  });
}

// Log → lake: validate, score, write bronze, then commit the log offsets.
const loader = bronze && new LakeLoader(bronze, deadLetters, {
  validation,
  ...(detector && alerts ? { processor: new FraudProcessor(detector, alerts) } : {}),
  flushRows: config.LAKE_FLUSH_ROWS,
  flushBytes: config.LAKE_FLUSH_BYTES,
  flushIntervalMs: config.LAKE_FLUSH_INTERVAL_MS,
  ...(registry ? { decoder: registry.decoder } : {}),
  metrics,
  commit: (topic, partition, next) => input!.commit(topic, partition, next),
  onError: (err) => logger.error("Lake flush failed; will retry", { err }),
  onCommitError: (err) =>
    logger.warn("Committing log offsets failed; the records come again and are skipped", { err }),
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
if (input && loader) await input.start(loader);

// Silver and gold on a schedule, and the query API, each on an engine of its own.
let jobs: LakeJobs | undefined, query: LakeQuery | undefined;
const jobsEngines = works
  ? Array.from(
    { length: config.JOBS_ENGINES },
    () => new LakeEngine({ timeoutMs: config.JOBS_TIMEOUT_MS, niceness: config.JOBS_NICENESS }),
  )
  : [];
const queryEngine = works
  ? new LakeEngine({
    memoryLimitMb: config.QUERY_MEMORY_LIMIT_MB,
    recycleAboveMb: config.QUERY_ENGINE_RECYCLE_MB,
  })
  : undefined;
if (jobsEngines.length > 0 && queryEngine && lake) {
  const runner = new LakeJobs(jobsEngines, lake, logger.child({ component: "jobs" }), {
    silver: {
      maxRowsPerRun: config.SILVER_MAX_ROWS_PER_RUN,
      maxPastDays: config.EVENT_MAX_PAST_DAYS,
    },
    retentionMs: config.LAKE_RETENTION_HOURS * 3_600_000,
  });
  jobs = runner;
  instrumentLakeJobs(runner, metrics); // cron and admin runs alike
  query = new LakeQuery(queryEngine, lake, {
    maxLimit: config.QUERY_MAX_LIMIT,
    maxRangeDays: config.QUERY_MAX_RANGE_DAYS,
    maxPastDays: config.EVENT_MAX_PAST_DAYS,
    maxFutureSeconds: config.EVENT_MAX_FUTURE_SECONDS,
  });
  // Start DuckDB (a WebAssembly compile of ~1–2 s) and read the tables' logs now, not on the
  // first query.
  query.warm().catch((err) => logger.warn("Query engine warm-up failed", { err: String(err) }));
  if (config.JOBS_CRON !== "off") {
    // Every worker schedules the jobs; the lake's job lock lets one run at a time.
    Deno.cron("lake jobs", config.JOBS_CRON, async () => {
      if (!stopping) await runner.run("all");
    });
    logger.info("Lake jobs scheduled", { cron: config.JOBS_CRON });
  }
}

// Access: API keys (optionally with signed bodies) and per-key request limits.
if (!config.API_KEYS) {
  logger.warn(
    "API_KEYS is not set: ingest and query routes are open to anyone; set API_KEYS=name:secret,… " +
      "before exposing the gateway",
  );
}
let rateLimitGuard: RateLimitGuard | undefined;
if (config.RATE_LIMIT_PER_KEY > 0) {
  const policy = { limit: config.RATE_LIMIT_PER_KEY, windowMs: config.RATE_LIMIT_WINDOW_S * 1000 };
  const limiter: RateLimiter = config.UPSTASH_REDIS_REST_URL
    ? new UpstashRateLimiter({
      url: config.UPSTASH_REDIS_REST_URL,
      token: config.UPSTASH_REDIS_REST_TOKEN!,
      timeoutMs: config.RATE_LIMIT_TIMEOUT_MS,
      ...policy,
    })
    : new MemoryRateLimiter(policy);
  if (!config.UPSTASH_REDIS_REST_URL && config.mode === "kafka") {
    logger.warn("Rate limits are per process: set UPSTASH_REDIS_REST_URL to share them");
  }
  rateLimitGuard = new RateLimitGuard(limiter, {
    failure: config.RATE_LIMIT_FAIL,
    logger: logger.child({ component: "ratelimit" }),
    onDegraded: ({ policy }) => metrics.rateLimitUnchecked(policy),
  });
}

const ingestor = log && new Ingestor(log, deadLetters, {
  validation,
  timeoutMs: config.INGEST_TIMEOUT_MS,
  maxEventBytes: config.MAX_EVENT_BYTES,
  metrics,
});
const app = createApp({
  logger,
  limits: {
    maxBytes: config.MAX_BODY_BYTES,
    maxEvents: config.MAX_EVENTS_PER_REQUEST,
    maxDepth: config.MAX_JSON_DEPTH,
  },
  readiness: checks,
  docs: { maxQueryLimit: config.QUERY_MAX_LIMIT },
  metrics: {
    metrics,
    ...(lagProbe ? { lagProbe } : {}),
    lag: { onError: (err) => logger.warn("Reading consumer lag failed", { err }) },
  },
  ...(ingestor ? { ingestor } : {}),
  ...(detector ? { score: { detector, validation } } : {}),
  ...(query ? { query } : {}),
  ...(jobs ? { admin: { jobs, token: config.ADMIN_TOKEN } } : {}),
  ...(config.API_KEYS
    ? {
      access: {
        keys: config.API_KEYS,
        hmac: config.API_HMAC,
        toleranceSeconds: config.API_HMAC_TOLERANCE_S,
        privateQuery: config.QUERY_AUTH === "private",
      },
    }
    : {}),
  ...(rateLimitGuard
    ? { rateLimit: { guard: rateLimitGuard, trustProxy: config.TRUST_PROXY } }
    : {}),
});

// Listen for signals before announcing the port: a supervisor may stop us the moment we listen.
Deno.addSignalListener("SIGTERM", () => void shutdown("SIGTERM"));
Deno.addSignalListener("SIGINT", () => void shutdown("SIGINT"));

const server = Deno.serve({
  port: config.PORT,
  hostname: config.HOSTNAME,
  onListen: ({ hostname, port }) =>
    logger.info("Listening", { hostname, port, mode: config.mode, role: config.ROLE }),
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
    await log?.close(); // every acknowledged event is durable in the log
    await drainInput(Math.max(0, config.SHUTDOWN_TIMEOUT_MS - 2000));
    registry?.close(); // a chunk waiting for the registry gives up unresolved: it is read again
    loader?.stopRetrying(); // a flush retried through a store outage gives up: it is read again
    await input?.stop();
    await loader?.close(); // flush buffers to bronze, commit offsets
    await input?.close(); // leave the consumer group
    await kafkaLag?.close();
    await deadLetters.close();
    await judge?.close(); // in-flight verdicts give up: their alerts go out on rules
    await alerts?.close();
    await windows?.close();
    await rateLimitGuard?.limiter.close();
    engine?.close();
    for (const e of jobsEngines) e.close(); // a job killed here leaves no half table: its commit never happened
    queryEngine?.close();
    await store?.close();
    clearTimeout(deadline);
    logger.info("Stopped", { ...loader?.stats });
    Deno.exit(0);
  } catch (err) {
    logger.error("Shutdown failed", { err });
    Deno.exit(1);
  }
}
