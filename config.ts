/**
 * Environment → one typed, validated Config. Every setting the gateway reads lives here, with its
 * default; the configuration table in `docs/configuration.md` mirrors {@link SETTINGS}.
 *
 * @module
 */
import { TOPIC_NAME } from "./shared/schemas.ts";
import { z } from "zod";
import type { Thresholds } from "./pipeline/fraud/rules.ts";
import { parseApiKeys } from "./routes/auth/api_keys.ts";
import type { S3StoreOptions } from "./lake/storage/s3_options.ts";

/** Kafka's own rule for topic names; it also makes a topic safe inside a file name. */

const int = (min: number, max: number) =>
  z.string().trim().regex(/^-?\d+$/, "must be an integer").transform(Number).pipe(
    z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`),
  );
const bool = z.string().trim().toLowerCase().pipe(z.enum(["true", "false", "1", "0"])).transform(
  (v) => v === "true" || v === "1",
);
const topic = z.string().trim().regex(TOPIC_NAME, "must be a Kafka topic name ([A-Za-z0-9._-])");
const topicList = z.string().transform((v) => v.split(",").map((t) => t.trim()).filter(Boolean))
  .pipe(z.array(z.string().regex(TOPIC_NAME, "must list Kafka topic names separated by commas")));

const ratio = z.string().trim().regex(/^\d*\.?\d+$/, "must be a number between 0 and 1")
  .transform(Number).pipe(z.number().min(0).max(1, "must be at most 1"));
const httpUrl = z.string().trim().pipe(
  z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }),
);

/** A schema registry's compatibility levels (Confluent's names). */
const COMPATIBILITY_LEVELS = [
  "BACKWARD",
  "BACKWARD_TRANSITIVE",
  "FORWARD",
  "FORWARD_TRANSITIVE",
  "FULL",
  "FULL_TRANSITIVE",
  "NONE",
] as const;

interface Setting<T extends z.ZodType> {
  schema: T;
  default?: string;
  doc: string;
  /** Its value is never echoed in an error message. */
  secret?: boolean;
}
function setting<T extends z.ZodType>(schema: T, doc: string, dflt?: string): Setting<T> {
  return dflt === undefined ? { schema, doc } : { schema, doc, default: dflt };
}
const secret = <T extends z.ZodType>(s: Setting<T>): Setting<T> => ({ ...s, secret: true });

/** Every environment variable the gateway reads: schema, default and a one-line description. */
export const SETTINGS = {
  PORT: setting(int(0, 65535), "HTTP port", "8080"),
  HOSTNAME: setting(z.string().min(1), "HTTP listen address", "0.0.0.0"),
  LAKE_DIR: setting(
    z.string().min(1),
    "Root of the lake on local disk (its Delta tables: bronze/, silver/, gold/, alerts/)",
    "./data/lake",
  ),
  LAKE_URL: setting(
    z.string().trim().regex(
      /^(s3:\/\/[A-Za-z0-9][A-Za-z0-9._-]{1,254}(\/.*)?|file:\/\/\/.+|[^:]+)$/,
      "must be a path, file:///… or s3://bucket/prefix",
    ),
    "Where the lake lives: a path, file:///… or s3://bucket/prefix. Unset = LAKE_DIR",
  ),
  LAKE_CACHE_DIR: setting(
    z.string().min(1),
    "Lake on S3: local copies of the data files queries and jobs read (bounded by " +
      "LAKE_CACHE_BYTES), in a subdirectory per process, so processes may share it",
    "./data/cache",
  ),
  LAKE_CACHE_BYTES: setting(
    int(0, 2 ** 50),
    "Lake on S3: most bytes kept in LAKE_CACHE_DIR, least recently used evicted first",
    "1073741824",
  ),
  LAKE_RETENTION_HOURS: setting(
    int(0, 24 * 3650),
    "Files removed from a table (replaced partitions) and old log entries are deleted after " +
      "this many hours by the jobs' vacuum step; files no commit names (crashed or in-flight " +
      "writes) after at least 1 h",
    "168",
  ),
  LAKE_CHECKPOINT_INTERVAL: setting(
    int(1, 100_000),
    "Every this many commits of a table, a Parquet checkpoint of its log is written",
    "10",
  ),
  LAKE_TEST_STALL: setting(
    z.enum(["upload", "commit"]),
    "Tests only: the lake store stops for good at the second bronze file upload (`upload`) or " +
      "right after a bronze commit (`commit`), so a fault test can kill the process there",
  ),
  AWS_ENDPOINT_URL_S3: setting(
    httpUrl,
    "S3 API endpoint of an s3:// LAKE_URL (else AWS_ENDPOINT_URL)",
  ),
  AWS_ENDPOINT_URL: setting(
    httpUrl,
    "Endpoint of AWS APIs, used for S3 when AWS_ENDPOINT_URL_S3 is unset",
  ),
  AWS_REGION: setting(z.string().trim().min(1), "Region S3 requests are signed for", "us-east-1"),
  AWS_ACCESS_KEY_ID: secret(
    setting(z.string().trim().min(1), "S3 access key id of an s3:// LAKE_URL"),
  ),
  AWS_SECRET_ACCESS_KEY: secret(
    setting(z.string().trim().min(1), "S3 secret access key of an s3:// LAKE_URL"),
  ),
  WAL_DIR: setting(
    z.string().min(1),
    "Embedded mode only: the local write-ahead log that makes a 2xx durable before the lake flush",
    "./data/wal",
  ),
  DEAD_LETTER_DIR: setting(
    z.string().min(1),
    "Embedded mode only: NDJSON dead letters (Kafka mode uses KAFKA_TOPIC_DEAD_LETTER)",
    "./data/dead_letter",
  ),
  KAFKA_BROKERS: setting(
    z.string().transform((v) => v.split(",").map((b) => b.trim()).filter(Boolean)).pipe(
      z.array(
        z.string().regex(/^[^\s:]+:\d{1,5}$/, "must list host:port pairs separated by commas"),
      )
        .min(1, "must name at least one broker"),
    ),
    "Comma-separated host:port list. Unset = embedded mode (no Kafka)",
  ),
  KAFKA_CLIENT_ID: setting(z.string().min(1), "Kafka client id", "streamgate"),
  KAFKA_GROUP_ID: setting(
    z.string().min(1),
    "Consumer group of the lake writers",
    "streamgate-bronze",
  ),
  KAFKA_TOPIC_EVENTS: setting(topic, "Topic that HTTP-accepted events are produced to", "events"),
  KAFKA_TOPIC_DEAD_LETTER: setting(
    topic,
    "Dead-letter topic (original bytes + reasons in headers)",
    "events.dlq",
  ),
  KAFKA_CONSUME_TOPICS: setting(
    topicList,
    "Topics consumed into bronze (comma-separated); default: KAFKA_TOPIC_EVENTS",
  ),
  KAFKA_FROM_BEGINNING: setting(bool, "A new consumer group starts at the earliest offset", "true"),
  KAFKA_CONNECT_TIMEOUT_MS: setting(int(100, 120_000), "Kafka connection timeout", "5000"),
  KAFKA_SESSION_TIMEOUT_MS: setting(
    int(6000, 300_000),
    "Consumer session timeout: how long a crashed member holds its partitions before a rebalance",
    "30000",
  ),
  SCHEMA_REGISTRY_URL: setting(
    httpUrl,
    "Kafka mode: a Confluent-compatible Schema Registry (its API base URL). Set = produced " +
      "records are framed with registered schema ids, framed consumed records are decoded. " +
      "Unset = bare JSON",
  ),
  SCHEMA_REGISTRY_AUTH: secret(setting(
    z.string().regex(/^[^:]+:.+$/s, "must be user:password").transform((v) => {
      const at = v.indexOf(":");
      return { username: v.slice(0, at), password: v.slice(at + 1) };
    }),
    "Basic auth for SCHEMA_REGISTRY_URL, as user:password",
  )),
  SCHEMA_REGISTRY_COMPATIBILITY: setting(
    z.enum(COMPATIBILITY_LEVELS),
    "Compatibility level set on the subjects the gateway creates, and expected of the existing " +
      "ones (another level stops the start)",
    "BACKWARD",
  ),
  SCHEMA_REGISTRY_TIMEOUT_MS: setting(
    int(100, 120_000),
    "Timeout of one schema registry request",
    "5000",
  ),
  SCHEMA_REGISTRY_RETRY_MS: setting(
    int(0, 3_600_000),
    "How long a worker retries the registry for a framed record's schema (the partition waits) " +
      "before it dead-letters the record",
    "60000",
  ),
  MAX_BODY_BYTES: setting(
    int(1024, 1 << 30),
    "Largest request body, checked after gzip too",
    "5242880",
  ),
  MAX_EVENTS_PER_REQUEST: setting(int(1, 1_000_000), "Most events in one request", "10000"),
  MAX_EVENT_BYTES: setting(
    int(1024, 100_000_000),
    "Largest single event (its JSON, UTF-8); keep it under the broker's message.max.bytes",
    "900000",
  ),
  MAX_JSON_DEPTH: setting(int(2, 512), "Deepest JSON nesting accepted in a body", "32"),
  UNKNOWN_TYPES: setting(
    z.enum(["reject", "other"]),
    "Events of an unknown type: `reject` (dead letter) or keep them in `type=other`",
    "reject",
  ),
  EVENT_MAX_PAST_DAYS: setting(
    int(0, 36_500),
    "Oldest accepted occurred_at, in days before received_at",
    "30",
  ),
  EVENT_MAX_FUTURE_SECONDS: setting(
    int(0, 31_536_000),
    "Latest accepted occurred_at, in seconds after received_at (clock skew)",
    "3600",
  ),
  LAKE_FLUSH_INTERVAL_MS: setting(
    int(50, 3_600_000),
    "Longest time an accepted event waits for the lake",
    "2000",
  ),
  LAKE_FLUSH_ROWS: setting(
    int(1, 5_000_000),
    "Rows per log partition that force a lake flush",
    "50000",
  ),
  LAKE_FLUSH_BYTES: setting(
    int(1024, 1 << 30),
    "Buffered bytes per log partition that force a flush",
    "33554432",
  ),
  LAKE_WRITER_RECYCLE_ROWS: setting(
    int(0, 1_000_000_000),
    "Replace the bronze writer's DuckDB worker after this many rows (DuckDB-wasm memory only " +
      "grows); 0 = never",
    "500000",
  ),
  INGEST_MAX_PENDING_EVENTS: setting(
    int(1, 10_000_000),
    "Events waiting for a durable commit; beyond it POST /events answers 503 + Retry-After",
    "200000",
  ),
  INGEST_MAX_LAG_EVENTS: setting(
    int(1, 100_000_000),
    "Embedded mode: events durable in the WAL but not yet in the lake; beyond it 503 + Retry-After",
    "1000000",
  ),
  INGEST_TIMEOUT_MS: setting(
    int(100, 300_000),
    "Longest a request waits for durability before a 503",
    "10000",
  ),
  GROUP_COMMIT_MAX_EVENTS: setting(
    int(1, 1_000_000),
    "Most events in one group commit (fsync / produce)",
    "10000",
  ),
  KAFKA_TOPIC_ALERTS: setting(
    topic,
    "Kafka mode: topic fraud alerts are produced to",
    "fraud.alerts",
  ),
  FRAUD_SCORING: setting(bool, "Score every accepted event with the fraud rules", "true"),
  UPSTASH_REDIS_REST_URL: setting(
    httpUrl,
    "Upstash (or serverless-redis-http) REST URL for the fraud windows. Unset = in-memory windows",
  ),
  UPSTASH_REDIS_REST_TOKEN: secret(setting(
    z.string().min(1),
    "Bearer token for UPSTASH_REDIS_REST_URL (required with it)",
  )),
  WINDOW_TIMEOUT_MS: setting(
    int(50, 60_000),
    "Per-request timeout of the Redis window store",
    "2000",
  ),
  WINDOW_MEMORY_MAX_KEYS: setting(
    int(100, 100_000_000),
    "In-memory window store: most keys kept, least recently written evicted first (≤ ~10 KB each)",
    "100000",
  ),
  OLLAMA_HOST: setting(
    httpUrl,
    "Ollama URL for LLM verdicts on flagged users. Unset = rules only",
  ),
  OLLAMA_MODEL: setting(z.string().min(1), "Ollama model for verdicts", "llama3.2:1b"),
  OLLAMA_TIMEOUT_MS: setting(int(100, 300_000), "Per-attempt timeout of an LLM call", "10000"),
  OLLAMA_CONCURRENCY: setting(int(1, 64), "LLM calls in flight at once", "2"),
  FRAUD_COOLDOWN_MS: setting(
    int(0, 86_400_000),
    "No second alert (or LLM call) for a user within this long",
    "300000",
  ),
  FRAUD_ALERT_SCORE: setting(ratio, "Rule score that raises an alert", "0.7"),
  FRAUD_BLOCK_SCORE: setting(ratio, "Rule score for which POST /score answers block", "0.9"),
  FRAUD_LOGINS_PER_MINUTE: setting(int(1, 1_000_000), "high_frequency_login: > N logins/min", "10"),
  FRAUD_FAILURES_IN_A_ROW: setting(
    int(1, 1000),
    "repeated_login_failures: >= N failures in a row",
    "3",
  ),
  FRAUD_HIGH_VALUE_AMOUNT: setting(
    int(0, 1_000_000_000),
    "high_value_purchase: amount > N",
    "1000",
  ),
  FRAUD_PURCHASES_PER_HOUR: setting(
    int(1, 1_000_000),
    "rapid_successive_purchases: >= N purchases/hour",
    "5",
  ),
  FRAUD_API_FAILURES_PER_MINUTE: setting(
    int(1, 1_000_000),
    "high_api_failure_rate: >= N failed API calls/min (5xx, 401, 403, 429)",
    "5",
  ),
  FRAUD_BURST_LOGINS: setting(
    int(1, 1_000_000),
    "login_burst_then_purchase: a purchase after > N logins in FRAUD_BURST_WINDOW_MS",
    "10",
  ),
  FRAUD_BURST_WINDOW_MS: setting(int(1000, 3_600_000), "Window of the bot-attack rule", "300000"),
  FRAUD_IP_LOGINS_PER_MINUTE: setting(
    int(1, 1_000_000),
    "ip_login_burst: > N logins/min from one IP",
    "30",
  ),
  FRAUD_CARD_PURCHASES_PER_HOUR: setting(
    int(1, 1_000_000),
    "card_velocity: >= N purchases/hour with one card fingerprint",
    "5",
  ),
  FRAUD_UNUSUAL_HOUR_MIN_DAYS: setting(
    int(1, 30),
    "unusual_time_activity: applies to users active on >= N distinct days",
    "7",
  ),
  ROLE: setting(
    z.enum(["all", "gateway", "worker"]),
    "`gateway`: HTTP → Kafka only (no disk); `worker`: Kafka → lake, scoring, jobs, query API; " +
      "`all`: both (needed in embedded mode)",
    "all",
  ),
  JOBS_CRON: setting(
    z.string().trim().regex(
      /^(off|[\d*,/-]+(\s+[\d*,/-]+){4})$/,
      "must be a 5-field cron expression (UTC) or `off`",
    ),
    "When the silver and gold jobs run (`Deno.cron`, UTC); `off` = only on demand",
    "*/15 * * * *",
  ),
  JOBS_TIMEOUT_MS: setting(
    int(1000, 86_400_000),
    "Longest one silver/gold DuckDB call may take before the job fails",
    "1800000",
  ),
  JOBS_ENGINES: setting(
    int(1, 8),
    "DuckDB workers silver runs on at once, each a shard of the run's events (by `event_id`); " +
      "each holds its shard of a run in memory",
    "2",
  ),
  JOBS_NICENESS: setting(
    int(0, 19),
    "Linux nice value of the jobs' DuckDB worker threads: a running job yields the cores to " +
      "ingest and queries and takes them when they idle (0 = the process's priority)",
    "10",
  ),
  QUERY_MEMORY_LIMIT_MB: setting(
    int(64, 65_536),
    "DuckDB memory limit of the query API's engine (MiB): its buffers stay under it, and the " +
      "process's RSS with them; a query that needs more answers 500",
    "256",
  ),
  QUERY_ENGINE_RECYCLE_MB: setting(
    int(0, 65_536),
    "Replace the query API's DuckDB worker, between queries, once its memory (WebAssembly plus its " +
      "JavaScript heap, neither of which shrinks) reaches this many MiB; queries in flight finish " +
      "on the old worker. 0 = never",
    "192",
  ),
  SILVER_MAX_ROWS_PER_RUN: setting(
    int(1000, 100_000_000),
    "Bronze rows one silver run takes on (the rest waits for the next run); bounds job memory: " +
      "DuckDB-wasm keeps a run's high-water mark (~0.85 GB peak RSS at 500,000, 1.25 GB at 1M)",
    "500000",
  ),
  ADMIN_TOKEN: secret(setting(
    z.string().min(16, "must be at least 16 characters"),
    "Bearer token for POST /admin/jobs/:name and GET /admin/jobs. Unset = admin routes off",
  )),
  API_KEYS: secret(setting(
    z.string().transform((v, ctx) => {
      try {
        return parseApiKeys(v);
      } catch (err) {
        ctx.issues.push({ code: "custom", message: (err as Error).message, input: "" });
        return z.NEVER;
      }
    }),
    "Comma-separated `name:secret` API keys (secrets ≥ 16 chars) for POST /events, /score and, " +
      "with QUERY_AUTH=private, the query routes. Unset = no auth (a warning at start)",
  )),
  API_HMAC: setting(
    z.enum(["off", "optional", "required"]),
    "Signed ingest bodies: `X-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, t.body)>`",
    "off",
  ),
  API_HMAC_TOLERANCE_S: setting(
    int(1, 3600),
    "Largest distance between a signature's t and the clock, in seconds",
    "300",
  ),
  QUERY_AUTH: setting(
    z.enum(["public", "private"]),
    "With API_KEYS set: `private` = the query routes need a key too",
    "private",
  ),
  RATE_LIMIT_PER_KEY: setting(
    int(0, 1_000_000),
    "Requests per RATE_LIMIT_WINDOW_S per API key (per client address without auth); 0 = off",
    "0",
  ),
  RATE_LIMIT_WINDOW_S: setting(int(1, 3600), "Sliding window of RATE_LIMIT_PER_KEY", "10"),
  RATE_LIMIT_FAIL: setting(
    z.enum(["open", "closed"]),
    "When the limit store (Redis) is down: `open` lets requests through, `closed` answers 503",
    "open",
  ),
  RATE_LIMIT_TIMEOUT_MS: setting(int(50, 10_000), "Timeout of one Redis rate-limit check", "500"),
  TRUST_PROXY: setting(
    bool,
    "Without auth, rate-limit by the last X-Forwarded-For entry instead of the peer address",
    "false",
  ),
  QUERY_MAX_LIMIT: setting(int(1, 100_000), "Largest `limit` of GET /events and /alerts", "1000"),
  QUERY_MAX_RANGE_DAYS: setting(
    int(1, 3660),
    "Longest from–to range of a query, in days",
    "31",
  ),
  SHUTDOWN_TIMEOUT_MS: setting(int(100, 600_000), "Graceful shutdown budget before exit", "15000"),
  LOG_LEVEL: setting(z.enum(["debug", "info", "warn", "error"]), "Log level", "info"),
} as const;

type Settings = typeof SETTINGS;
type Parsed = { [K in keyof Settings]: z.output<Settings[K]["schema"]> };
/** The validated configuration. Optional settings without a default are `undefined` when unset. */
export type Config = Parsed & { mode: "embedded" | "kafka" };

/** A configuration error, raised at start-up; the message names the bad variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Reads and validates the configuration.
 *
 * @param env Variables to read; defaults to the process environment.
 * @throws {ConfigError} naming every variable that is invalid.
 */
export function loadConfig(env: Record<string, string | undefined> = Deno.env.toObject()): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(SETTINGS) as [string, Setting<z.ZodType>][]) {
    const raw = env[name] === undefined || env[name] === "" ? spec.default : env[name];
    if (raw === undefined) {
      out[name] = undefined;
      continue;
    }
    const result = spec.schema.safeParse(raw);
    if (result.success) out[name] = result.data;
    else {
      const why = result.error.issues.map((i) => i.message).join("; ");
      problems.push(`${name} ${why}${spec.secret ? "" : `, got ${JSON.stringify(raw)}`}`);
    }
  }
  if (problems.length > 0) {
    throw new ConfigError(`Cannot start with this configuration: ${problems.join(". ")}`);
  }
  const config = out as Parsed;
  if (config.UPSTASH_REDIS_REST_URL && !config.UPSTASH_REDIS_REST_TOKEN) {
    throw new ConfigError(
      "Cannot start with this configuration: UPSTASH_REDIS_REST_TOKEN must be set when " +
        "UPSTASH_REDIS_REST_URL is",
    );
  }
  if (
    config.LAKE_URL?.startsWith("s3://") &&
    (!config.AWS_ACCESS_KEY_ID || !config.AWS_SECRET_ACCESS_KEY)
  ) {
    throw new ConfigError(
      "Cannot start with this configuration: an s3:// LAKE_URL needs AWS_ACCESS_KEY_ID and " +
        "AWS_SECRET_ACCESS_KEY",
    );
  }
  if (config.SCHEMA_REGISTRY_URL && !config.KAFKA_BROKERS) {
    throw new ConfigError(
      "Cannot start with this configuration: SCHEMA_REGISTRY_URL needs KAFKA_BROKERS (the " +
        "embedded mode's WAL carries bare JSON)",
    );
  }
  if (config.SCHEMA_REGISTRY_AUTH && !config.SCHEMA_REGISTRY_URL) {
    throw new ConfigError(
      "Cannot start with this configuration: SCHEMA_REGISTRY_AUTH is set but SCHEMA_REGISTRY_URL " +
        "is not",
    );
  }
  if (config.ROLE !== "all" && !config.KAFKA_BROKERS) {
    throw new ConfigError(
      `Cannot start with this configuration: ROLE ${config.ROLE} needs KAFKA_BROKERS (the ` +
        "embedded mode runs gateway and worker in one process: ROLE all)",
    );
  }
  return { ...config, mode: config.KAFKA_BROKERS ? "kafka" : "embedded" };
}

/** Topics the lake writers consume: the configured list, or the events topic alone. */
export function consumedTopics(config: Config): string[] {
  const list = config.KAFKA_CONSUME_TOPICS;
  return list && list.length > 0 ? list : [config.KAFKA_TOPIC_EVENTS];
}

/** The fraud rule thresholds of a configuration. */
export function fraudThresholds(config: Config): Thresholds {
  return {
    loginsPerMinute: config.FRAUD_LOGINS_PER_MINUTE,
    failuresInARow: config.FRAUD_FAILURES_IN_A_ROW,
    highValueAmount: config.FRAUD_HIGH_VALUE_AMOUNT,
    purchasesPerHour: config.FRAUD_PURCHASES_PER_HOUR,
    apiFailuresPerMinute: config.FRAUD_API_FAILURES_PER_MINUTE,
    burstLogins: config.FRAUD_BURST_LOGINS,
    burstWindowMs: config.FRAUD_BURST_WINDOW_MS,
    ipLoginsPerMinute: config.FRAUD_IP_LOGINS_PER_MINUTE,
    cardPurchasesPerHour: config.FRAUD_CARD_PURCHASES_PER_HOUR,
    unusualHourMinDays: config.FRAUD_UNUSUAL_HOUR_MIN_DAYS,
    alertScore: config.FRAUD_ALERT_SCORE,
    blockScore: config.FRAUD_BLOCK_SCORE,
  };
}

/** Where the lake is: `LAKE_URL`, else `LAKE_DIR`. */
export function lakeUrl(config: Config): string {
  return config.LAKE_URL ?? config.LAKE_DIR;
}

/** The S3 store settings of a configuration (used when `LAKE_URL` is `s3://…`). */
export function s3Options(config: Config): S3StoreOptions | undefined {
  if (!config.AWS_ACCESS_KEY_ID || !config.AWS_SECRET_ACCESS_KEY) return undefined;
  return {
    endpoint: config.AWS_ENDPOINT_URL_S3 ?? config.AWS_ENDPOINT_URL,
    region: config.AWS_REGION,
    accessKeyId: config.AWS_ACCESS_KEY_ID,
    secretAccessKey: config.AWS_SECRET_ACCESS_KEY,
    cacheDir: config.LAKE_CACHE_DIR,
    cacheBytes: config.LAKE_CACHE_BYTES,
  };
}
