/**
 * The gateway's Prometheus metrics. One {@link Metrics} per process, created in `main.ts` and handed
 * to the parts that report (ingestor, lake loader, fraud detector, alert pipeline, LLM judge, HTTP
 * middleware); `GET /metrics` (`routes/metrics.ts`) renders it. This is the only module that imports
 * prom-client.
 *
 * The metric names and labels are a contract: dashboards query them. Every label has a bounded set
 * of values: event types collapse to the known {@link EVENT_TYPES} plus `other` (a type name we do
 * not know) and `unknown` (no type at all), rule names to {@link RULES} plus `other`, LLM verdicts
 * to the three the judge accepts plus `other`, HTTP routes to the matched route pattern.
 *
 * prom-client's default process metrics are not registered: under Deno they report a resident
 * memory of 0 and a NaN event loop lag. `process_resident_memory_bytes` comes from
 * `Deno.memoryUsage()` instead.
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { RULE_NAMES as RULES, SEVERITIES as SEVERITY_LIST } from "./alert.ts";
import { EVENT_TYPES, OTHER_TYPE } from "./schemas.ts";

/** The `Content-Type` of the Prometheus text exposition format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Where an event entered the gateway: `POST /events`, or a Kafka topic the lake loader reads. */
export type EventSource = "http" | "kafka";

/** The label of an event that has no usable `type` field. */
export const UNKNOWN_LABEL = "unknown";

/** What happened to an event, one counter each. */
export type EventOutcome = "received" | "accepted" | "rejected";

/** How an LLM judge request ended (the `outcome` label of `streamgate_llm_calls_total`). */
export type LlmOutcome =
  /** The model gave a valid verdict. */
  | "ok"
  /** The last attempt ran out of time. */
  | "timeout"
  /** The model's reply was not a valid verdict. */
  | "invalid_reply"
  /** Network error, HTTP error or an internal error. */
  | "error"
  /** The circuit breaker refused the call. */
  | "circuit_open"
  /** Too many calls waiting. */
  | "queue_full"
  /** The user had a verdict recently (or one in progress) for another alert. */
  | "cooldown"
  /** The same alert asked again and got the earlier outcome. */
  | "cached"
  /** The judge is closing. */
  | "shutdown";

/** Consumer lag of one log partition. */
export interface PartitionLag {
  topic: string;
  partition: number;
  /** Records in the log not yet committed to the lake. */
  lag: number;
}

/** Reads the current consumer lag of every partition the gateway consumes. */
export type LagProbe = () => Promise<PartitionLag[]>;

/** What {@link Metrics.lakeJob} reads of a lake job's report (`lake/jobs.ts` `JobReport`). */
export interface LakeJobRun {
  job: string;
  status: string;
  duration_ms: number;
  rows: number;
}

/** HTTP methods kept as they are in the `method` label; any other becomes `OTHER`. */
const HTTP_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
const KNOWN_TYPES = new Set<string>(EVENT_TYPES);
const RULE_NAMES = new Set<string>(RULES);
const SEVERITIES = new Set<string>(SEVERITY_LIST);
const LLM_VERDICTS = new Set(["fraud", "suspicious", "legitimate"]);
const JOB_NAMES = new Set(["silver", "gold", "all"]);
const JOB_STATUSES = new Set(["ok", "skipped", "failed"]);

/** Buckets, in seconds, of each histogram. */
export const BUCKETS = {
  http: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  lakeFlush: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  llm: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60],
  lakeJob: [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
} as const;

/** The `type` label of an event's `type` field: a known type, `other` or `unknown`. */
export function typeLabel(type: unknown): string {
  if (typeof type !== "string" || type === "") return UNKNOWN_LABEL;
  return KNOWN_TYPES.has(type) ? type : OTHER_TYPE;
}

/** The `type` field of a parsed event, if it has one. */
export function typeOf(value: unknown): unknown {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as { type?: unknown }).type
    : undefined;
}

/** Options of {@link Metrics}. */
export interface MetricsOptions {
  /**
   * The registry to register on. A fresh one by default, never prom-client's global registry, so
   * two instances (tests) do not collide.
   */
  registry?: Registry;
}

type Registers = Registry[];

// The metric groups, in registration order (the order `/metrics` lists them in).

/** What happened to the events that came in, and the dead letters stored. */
function ingestMetrics(registers: Registers) {
  const events = (outcome: EventOutcome, help: string) =>
    new Counter({
      name: `streamgate_events_${outcome}_total`,
      help,
      labelNames: ["source", "type"] as const,
      registers,
    });
  return {
    events: {
      received: events("received", "Events received, by source and event type"),
      accepted: events("accepted", "Events that passed validation, by source and event type"),
      rejected: events("rejected", "Events that failed validation, by source and event type"),
    } satisfies Record<EventOutcome, Counter<"source" | "type">>,
    deadLetters: new Counter({
      name: "streamgate_dead_letters_total",
      help: "Dead letters durably stored, by source",
      labelNames: ["source"] as const,
      registers,
    }),
  };
}

/** Bronze writes, and the consumer lag: what is not in the lake yet. */
function lakeMetrics(registers: Registers) {
  return {
    rows: new Counter({
      name: "streamgate_lake_rows_written_total",
      help: "Rows written to bronze Parquet",
      registers,
    }),
    files: new Counter({
      name: "streamgate_lake_files_written_total",
      help: "Bronze Parquet files written",
      registers,
    }),
    bytes: new Counter({
      name: "streamgate_lake_bytes_written_total",
      help: "Bytes of bronze Parquet files written",
      registers,
    }),
    flush: new Histogram({
      name: "streamgate_lake_flush_seconds",
      help: "Time to write one partition's buffered batch to bronze",
      buckets: [...BUCKETS.lakeFlush],
      registers,
    }),
    lag: new Gauge({
      name: "streamgate_consumer_lag",
      help: "Records in the log not yet committed to the lake, by topic and partition",
      labelNames: ["topic", "partition"] as const,
      registers,
    }),
  };
}

/** Fraud alerts and degraded scoring. */
function fraudMetrics(registers: Registers) {
  return {
    alerts: new Counter({
      name: "streamgate_fraud_alerts_total",
      help: "Fraud alerts raised, once per rule that fired in the alert",
      labelNames: ["rule", "severity"] as const,
      registers,
    }),
    degraded: new Counter({
      name: "streamgate_fraud_scoring_degraded_total",
      help: "Events scored with the stateless rules only because the window store was unavailable",
      registers,
    }),
  };
}

/** Requests the rate limiter decided without its store. */
function rateLimitMetrics(registers: Registers) {
  return {
    unchecked: new Counter({
      name: "streamgate_rate_limit_unchecked_total",
      help: "Requests decided without the rate-limit store (it was down), by the failure policy",
      labelNames: ["policy"],
      registers,
    }),
  };
}

/** LLM judge requests and the time of the calls that reached the model. */
function llmMetrics(registers: Registers) {
  return {
    calls: new Counter({
      name: "streamgate_llm_calls_total",
      help: "LLM judge requests, by outcome",
      labelNames: ["outcome"] as const,
      registers,
    }),
    disagreements: new Counter({
      name: "streamgate_llm_disagreements_total",
      help: "Alerts where the LLM verdict disagrees with the rules (a model problem or an " +
        "injection attempt), by the rules' highest severity and the LLM's verdict",
      labelNames: ["severity", "verdict"] as const,
      registers,
    }),
    seconds: new Histogram({
      name: "streamgate_llm_call_seconds",
      help: "Duration of LLM judge calls that reached the model, retries included",
      buckets: [...BUCKETS.llm],
      registers,
    }),
  };
}

/** HTTP request durations. */
function httpMetrics(registers: Registers) {
  return {
    duration: new Histogram({
      name: "streamgate_http_request_duration_seconds",
      help: "HTTP request duration until the response starts, by method, route pattern and status",
      labelNames: ["method", "route", "status"] as const,
      buckets: [...BUCKETS.http],
      registers,
    }),
  };
}

/** Lake job runs, durations and rows. */
function lakeJobMetrics(registers: Registers) {
  return {
    runs: new Counter({
      name: "streamgate_lake_job_runs_total",
      help: "Lake job runs, by job and status (an `all` run counts under `all` only)",
      labelNames: ["job", "status"] as const,
      registers,
    }),
    seconds: new Histogram({
      name: "streamgate_lake_job_seconds",
      help: "Duration of lake job runs, by job",
      labelNames: ["job"] as const,
      buckets: [...BUCKETS.lakeJob],
      registers,
    }),
    rows: new Counter({
      name: "streamgate_lake_job_rows_total",
      help: "Rows processed by lake jobs, by job (silver: bronze rows read; gold: rows written)",
      labelNames: ["job"] as const,
      registers,
    }),
  };
}

/** Gauges of the process now: events waiting for the log, resident memory (read at scrape). */
function processMetrics(registers: Registers) {
  const pending = new Gauge({
    name: "streamgate_ingest_pending_events",
    help: "Accepted HTTP events handed to the durable log and not yet confirmed",
    registers,
  });
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes",
    registers,
    collect() {
      this.set(Deno.memoryUsage().rss);
    },
  });
  return { pending };
}

/** Every metric of the gateway, and the methods the pipeline reports through. */
export class Metrics {
  /** The prom-client registry holding every metric below. */
  readonly registry: Registry;

  readonly #ingest: ReturnType<typeof ingestMetrics>;
  readonly #lake: ReturnType<typeof lakeMetrics>;
  readonly #fraud: ReturnType<typeof fraudMetrics>;
  readonly #rateLimit: ReturnType<typeof rateLimitMetrics>;
  readonly #llm: ReturnType<typeof llmMetrics>;
  readonly #http: ReturnType<typeof httpMetrics>;
  readonly #jobs: ReturnType<typeof lakeJobMetrics>;
  readonly #process: ReturnType<typeof processMetrics>;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry = options.registry ?? new Registry()];
    this.#ingest = ingestMetrics(registers);
    this.#lake = lakeMetrics(registers);
    this.#fraud = fraudMetrics(registers);
    this.#rateLimit = rateLimitMetrics(registers);
    this.#llm = llmMetrics(registers);
    this.#http = httpMetrics(registers);
    this.#jobs = lakeJobMetrics(registers);
    this.#process = processMetrics(registers);
  }

  /** Counts events by outcome; `types` are the events' raw `type` fields (see {@link typeLabel}). */
  events(outcome: EventOutcome, source: EventSource, types: Iterable<unknown>): void {
    const counter = this.#ingest.events[outcome];
    for (const [type, n] of tally(types, typeLabel)) counter.inc({ source, type }, n);
  }

  /** Counts dead letters that are durably stored, by their source. */
  deadLetters(letters: Iterable<{ source: EventSource }>): void {
    for (const [source, n] of tally(letters, (l) => l.source)) {
      this.#ingest.deadLetters.inc({ source }, n);
    }
  }

  /** Moves the pending-events gauge: `+n` when events go to the log, `-n` when it answers. */
  ingestPending(delta: number): void {
    this.#process.pending.inc(delta);
  }

  /** Counts one bronze flush and observes its duration. */
  lakeFlushed(
    result: { rows: number; files: readonly unknown[]; bytes: number },
    ms: number,
  ): void {
    this.#lake.rows.inc(result.rows);
    this.#lake.files.inc(result.files.length);
    this.#lake.bytes.inc(result.bytes);
    this.#lake.flush.observe(ms / 1000);
  }

  /** Sets the consumer lag of one partition. */
  setLag(topic: string, partition: number, lag: number): void {
    this.#lake.lag.set({ topic, partition: String(partition) }, Math.max(0, lag));
  }

  /**
   * Replaces every partition's lag: partitions absent from `lags` disappear. `undefined` (the lag
   * could not be read) removes them all, since a stale lag would look healthy.
   */
  setLags(lags: readonly PartitionLag[] | undefined): void {
    this.#lake.lag.reset();
    for (const l of lags ?? []) this.setLag(l.topic, l.partition, l.lag);
  }

  /** Counts a raised alert once per rule that fired in it. */
  fraudAlert(rules: readonly { name: string; severity: string }[]): void {
    for (const r of rules) {
      this.#fraud.alerts.inc({
        rule: RULE_NAMES.has(r.name) ? r.name : OTHER_TYPE,
        severity: SEVERITIES.has(r.severity) ? r.severity : OTHER_TYPE,
      });
    }
  }

  /** Counts events scored without their windows (the window store was unavailable). */
  fraudScoringDegraded(events: number): void {
    if (events > 0) this.#fraud.degraded.inc(events);
  }

  /** Counts a request let through (`open`) or refused (`closed`) with the limit store down. */
  rateLimitUnchecked(policy: "open" | "closed"): void {
    this.#rateLimit.unchecked.inc({ policy });
  }

  /** Counts one LLM judge request by outcome. */
  llmCall(outcome: LlmOutcome): void {
    this.#llm.calls.inc({ outcome });
  }

  /**
   * Counts an alert whose LLM verdict disagrees with its rules, by the rules' highest severity and
   * the verdict (anything but the three known verdicts is `other`).
   */
  llmDisagreement(severity: string, verdict: string): void {
    this.#llm.disagreements.inc({
      severity: SEVERITIES.has(severity) ? severity : OTHER_TYPE,
      verdict: LLM_VERDICTS.has(verdict) ? verdict : OTHER_TYPE,
    });
  }

  /** Observes the duration of an LLM call that reached the model. */
  llmCallDuration(ms: number): void {
    this.#llm.seconds.observe(ms / 1000);
  }

  /**
   * Observes one HTTP request. `route` must be a route pattern (`/schemas/:type`) or `unmatched`,
   * never the raw path: every distinct value is a new time series.
   */
  httpRequest(method: string, route: string, status: number, ms: number): void {
    this.#http.duration.observe({
      method: HTTP_METHODS.has(method) ? method : "OTHER",
      route,
      status: String(status),
    }, ms / 1000);
  }

  /** Counts one lake job run (pass the `JobReport` that `LakeJobs.run()` returns). */
  lakeJob(report: LakeJobRun): void {
    const job = JOB_NAMES.has(report.job) ? report.job : OTHER_TYPE;
    const status = JOB_STATUSES.has(report.status) ? report.status : OTHER_TYPE;
    this.#jobs.runs.inc({ job, status });
    this.#jobs.seconds.observe({ job }, report.duration_ms / 1000);
    if (report.rows > 0) this.#jobs.rows.inc({ job }, report.rows);
  }

  /** Every metric in the Prometheus text exposition format ({@link METRICS_CONTENT_TYPE}). */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Counts items by key. */
function tally<T>(items: Iterable<T>, key: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) {
    const k = key(item);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

/**
 * Makes `jobs.run()` report every run to `metrics`, whoever calls it (the cron, the admin route).
 * Replaces the method on this instance only.
 */
export function instrumentLakeJobs<N, R extends LakeJobRun>(
  jobs: { run(name: N): Promise<R> },
  metrics: Metrics,
): void {
  const run = jobs.run.bind(jobs);
  jobs.run = async function instrumentedRun(name: N): Promise<R> {
    const report = await run(name);
    metrics.lakeJob(report);
    return report;
  };
}

/** Options of {@link throttleLagProbe}. */
export interface ThrottleLagOptions {
  /** Reuse a reading for this long. @default 5000 */
  intervalMs?: number;
  /** Give up on a reading after this long (the lag is then unknown). @default 2000 */
  timeoutMs?: number;
  /** Told of a failed or timed-out reading. */
  onError?: (err: unknown) => void;
  /** The clock; tests pass their own. @default Date.now */
  now?: () => number;
}

/**
 * Wraps a lag probe so scrapes cost the broker at most one reading per interval: a reading is
 * reused until it is `intervalMs` old, never more than one is in flight, and each is abandoned after
 * `timeoutMs`. Resolves `undefined` while the lag is unknown (the last reading failed); never
 * rejects.
 */
export function throttleLagProbe(
  probe: LagProbe,
  options: ThrottleLagOptions = {},
): () => Promise<PartitionLag[] | undefined> {
  const { intervalMs = 5000, timeoutMs = 2000, onError, now = Date.now } = options;
  let last: PartitionLag[] | undefined;
  let lastAt = -Infinity;
  let inFlight = false;
  return async function readLag() {
    if (inFlight || now() - lastAt < intervalMs) return last;
    inFlight = true;
    lastAt = now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reading = (async () => await probe())(); // a probe that throws is a failed reading
    try {
      last = await Promise.race([
        reading,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`Reading consumer lag timed out after ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } catch (err) {
      last = undefined;
      onError?.(err);
    } finally {
      clearTimeout(timer);
    }
    // A reading that timed out still holds the slot until it settles: no pile-up on a dead broker.
    reading.then(() => inFlight = false, () => inFlight = false);
    return last;
  };
}
