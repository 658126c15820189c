/**
 * Traffic generator: sends a scenario's events (see `scripts/events_gen.ts`) to a running gateway
 * over HTTP, or straight to its Kafka topic, at a steady rate, and reports what became of them.
 *
 * ```sh
 * deno task generate --scenario bot-attack --rate 2000 --duration 10 --target http://127.0.0.1:8080
 * deno task generate --scenario normal --events 100000 --target kafka://127.0.0.1:9092/events --json
 * ```
 *
 * Run with `--help` for every flag. Pacing is a token bucket; at most `--concurrency` requests are
 * in flight; a 429 or 503 pauses every sender for its `Retry-After` and the batch is sent again,
 * with the same body: event ids are set here, so a retry cannot store an event under two ids.
 * A scenario's barrier event (the bot's purchase) waits until its user's earlier requests are
 * answered, so the gateway scores it after them; other users' events keep flowing meanwhile.
 * Ctrl-C stops generating and waits for the requests in flight (a second one quits at once).
 * The exit code is 1 when a batch was finally lost, 2 for bad arguments.
 *
 * @module
 */
import { TOPIC_NAME } from "../shared/schemas.ts";
import { parseArgs as parseNodeArgs } from "node:util";
import {
  type ClientEvent,
  createScenario,
  type GeneratedEvent,
  type Scenario,
  type ScenarioName,
  SCENARIOS,
} from "./events_gen.ts";

// ---------------------------------------------------------------------------------------------
// Arguments

/** Where events go. */
export type Target =
  | { kind: "http"; url: string }
  | { kind: "kafka"; brokers: string[]; topic: string };

/** When to stop: after a time or a number of events. */
export type Limit = { kind: "duration"; seconds: number } | { kind: "events"; count: number };

/** The burst scenario's rate step. */
export interface Burst {
  factor: number;
  startS: number;
  lengthS: number;
}

/** Everything the command line says. */
export interface GenerateOptions {
  scenario: ScenarioName;
  rate: number;
  limit: Limit;
  target: Target;
  batch: number;
  concurrency: number;
  format: "json" | "ndjson";
  seed: number;
  users: number;
  attackShare: number;
  /** Set for the burst scenario only. */
  burst: Burst | undefined;
  retries: number;
  timeoutMs: number;
  json: boolean;
  quiet: boolean;
}

/** A bad command line. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const DEFAULT_TARGET = "http://127.0.0.1:8080";
const DEFAULT_TOPIC = "events";
const ATTACKS: readonly ScenarioName[] = ["bot-attack", "card-testing", "login-storm"];

export const USAGE = `Usage: deno task generate [options]

Sends generated events to a streamgate gateway and prints what became of them.

Options:
  --scenario NAME      ${SCENARIOS.join(" | ")} (default normal)
                         normal        realistic mix of all 13 event types
                         bot-attack    one bot user: 15 rapid logins, then a purchase, repeated
                         card-testing  small purchases, one card fingerprint, many accounts
                         login-storm   login_failed storm from a few IPs against many accounts
                         burst         normal mix; the rate jumps to --burst-factor x for a while
  --rate N             target events per second (default 100)
  --duration S         run for S seconds (default 10)
  --events N           send exactly N events instead of running for a time
  --target URL         http://host:port[/path] (POST, path default /events) or
                       kafka://host:port[,host:port][/topic] (topic default events)
                       (default ${DEFAULT_TARGET})
  --batch N            events per request or produce call (default 100)
  --concurrency N      requests in flight at most (default 8)
  --format F           HTTP body: json (an array) or ndjson (default json)
  --seed N             seed of the event contents (default random; printed in the summary)
  --users N            simulated ordinary users (default max(10000, 30 x peak rate): each does
                       about 2 events a minute, too few for the rate rules to flag)
  --attack-share F     attack scenarios: share of attack events, 0 < F <= 1 (default 0.2)
  --burst-factor F     burst: rate multiplier (default 5)
  --burst-start S      burst: seconds after the start (default a third of the run)
  --burst-length S     burst: seconds (default a third of the run)
  --retries N          re-sends of a failed or throttled batch before it is lost (default 8)
  --timeout-ms N       per-request timeout (default 30000)
  --json               print the summary as JSON
  --quiet              no progress on stderr
  -h, --help           this help

Progress goes to stderr (a bar on a terminal), the summary to stdout. Ctrl-C stops and reports.
Exit code: 0 when every batch was delivered, 1 when one was lost, 2 for bad arguments.`;

/** Parses and validates the command line. @throws {UsageError} */
export function parseArgs(args: string[]): GenerateOptions | "help" {
  let values: Record<string, string | boolean | undefined>;
  // node:util takes "-2" for a flag; glue negative numbers to their flag, so "--rate -2" gets the
  // range error it deserves.
  const flag = (a: string | undefined) => /^--[a-z-]+$/.test(a ?? "");
  const negative = (a: string | undefined) => /^-\d/.test(a ?? "");
  const glued = args.flatMap((a, i) =>
    negative(a) && flag(args[i - 1])
      ? []
      : flag(a) && negative(args[i + 1])
      ? [`${a}=${args[i + 1]}`]
      : [a]
  );
  try {
    const str = { type: "string" } as const;
    ({ values } = parseNodeArgs({
      args: glued,
      strict: true,
      allowPositionals: false,
      options: {
        scenario: str,
        rate: str,
        duration: str,
        events: str,
        target: str,
        batch: str,
        concurrency: str,
        format: str,
        seed: str,
        users: str,
        "attack-share": str,
        "burst-factor": str,
        "burst-start": str,
        "burst-length": str,
        retries: str,
        "timeout-ms": str,
        json: { type: "boolean" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    // node:util's messages go on with advice about positionals; the first sentence is the point.
    throw new UsageError((err as Error).message.split(/\.\s|\n/)[0]!.replace(/\.$/, ""));
  }
  if (values.help) return "help";
  const v = (name: string) => values[name] as string | undefined;

  const scenario = (v("scenario") ?? "normal") as ScenarioName;
  if (!SCENARIOS.includes(scenario)) {
    throw new UsageError(
      `Unknown --scenario "${scenario}": expected one of ${SCENARIOS.join(", ")}`,
    );
  }
  const rate = number("rate", v("rate"), { dflt: 100, min: 0, minExclusive: true, max: 1e6 });
  if (v("duration") !== undefined && v("events") !== undefined) {
    throw new UsageError("Cannot use --duration and --events together: choose one");
  }
  const limit: Limit = v("events") !== undefined
    ? { kind: "events", count: number("events", v("events"), { min: 1, max: 1e9, int: true }) }
    : {
      kind: "duration",
      seconds: number("duration", v("duration"), {
        dflt: 10,
        min: 0,
        minExclusive: true,
        max: 1e6,
      }),
    };
  const target = parseTarget(v("target") ?? DEFAULT_TARGET);
  const format = v("format") ?? "json";
  if (format !== "json" && format !== "ndjson") {
    throw new UsageError(`Unknown --format "${format}": expected json or ndjson`);
  }
  if (v("format") !== undefined && target.kind !== "http") {
    throw new UsageError("Cannot use --format with a kafka:// target: records are single events");
  }
  const onlyFor = (flags: string[], scenarios: readonly ScenarioName[]) => {
    for (const flag of flags) {
      if (v(flag) !== undefined && !scenarios.includes(scenario)) {
        throw new UsageError(
          `Cannot use --${flag} with scenario "${scenario}": it applies to ${scenarios.join(", ")}`,
        );
      }
    }
  };
  onlyFor(["attack-share"], ATTACKS);
  onlyFor(["burst-factor", "burst-start", "burst-length"], ["burst"]);

  let burst: Burst | undefined;
  if (scenario === "burst") {
    const planned = limit.kind === "duration" ? limit.seconds : limit.count / rate;
    burst = {
      factor: number("burst-factor", v("burst-factor"), { dflt: 5, min: 1, max: 1000 }),
      startS: number("burst-start", v("burst-start"), { dflt: planned / 3, min: 0, max: 1e6 }),
      lengthS: number("burst-length", v("burst-length"), {
        dflt: planned / 3,
        min: 0,
        minExclusive: true,
        max: 1e6,
      }),
    };
  }
  const peak = rate * (burst?.factor ?? 1);
  return {
    scenario,
    rate,
    limit,
    target,
    batch: number("batch", v("batch"), { dflt: 100, min: 1, max: 100_000, int: true }),
    concurrency: number("concurrency", v("concurrency"), { dflt: 8, min: 1, max: 1024, int: true }),
    format,
    seed: number("seed", v("seed"), {
      dflt: crypto.getRandomValues(new Uint32Array(1))[0]!,
      min: 0,
      max: 2 ** 32 - 1,
      int: true,
    }),
    users: number("users", v("users"), {
      dflt: Math.min(1_000_000, Math.max(10_000, Math.ceil(peak * 30))),
      min: 1,
      max: 10_000_000,
      int: true,
    }),
    attackShare: number("attack-share", v("attack-share"), {
      dflt: 0.2,
      min: 0,
      minExclusive: true,
      max: 1,
    }),
    burst,
    retries: number("retries", v("retries"), { dflt: 8, min: 0, max: 1000, int: true }),
    timeoutMs: number("timeout-ms", v("timeout-ms"), {
      dflt: 30_000,
      min: 100,
      max: 600_000,
      int: true,
    }),
    json: values.json === true,
    quiet: values.quiet === true,
  };
}

interface NumberRule {
  dflt?: number;
  min: number;
  minExclusive?: boolean;
  max: number;
  int?: boolean;
}

function number(name: string, raw: string | undefined, rule: NumberRule): number {
  if (raw === undefined) {
    if (rule.dflt === undefined) throw new UsageError(`Missing --${name}`);
    return rule.dflt;
  }
  const n = raw.trim() === "" ? NaN : Number(raw);
  const low = rule.minExclusive ? n > rule.min : n >= rule.min;
  if (!Number.isFinite(n) || (rule.int && !Number.isInteger(n)) || !low || n > rule.max) {
    const kind = rule.int ? "an integer" : "a number";
    const bound = rule.minExclusive ? `greater than ${rule.min}` : `from ${rule.min}`;
    throw new UsageError(`Invalid --${name} "${raw}": expected ${kind} ${bound} up to ${rule.max}`);
  }
  return n;
}

/** Parses `http(s)://host:port[/path]` or `kafka://host:port[,host:port…][/topic]`. */
export function parseTarget(raw: string): Target {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw)?.[1]?.toLowerCase();
  if (scheme === "http" || scheme === "https") {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new UsageError(`Invalid --target "${raw}": not a URL`);
    }
    if (url.search || url.hash) {
      throw new UsageError(`Invalid --target "${raw}": no query or fragment expected`);
    }
    if (url.pathname === "/" || url.pathname === "") url.pathname = "/events";
    return { kind: "http", url: url.href };
  }
  if (scheme === "kafka") {
    const rest = raw.slice("kafka://".length);
    const slash = rest.indexOf("/");
    const hosts = slash < 0 ? rest : rest.slice(0, slash);
    const topic = slash < 0 || slash === rest.length - 1 ? DEFAULT_TOPIC : rest.slice(slash + 1);
    const brokers = hosts.split(",");
    for (const b of brokers) {
      const m = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(b);
      if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
        throw new UsageError(`Invalid --target "${raw}": broker "${b}" is not host:port`);
      }
    }
    if (!TOPIC_NAME.test(topic)) {
      throw new UsageError(
        `Invalid --target "${raw}": topic "${topic}" may hold only letters, digits and ._-`,
      );
    }
    return { kind: "kafka", brokers, topic };
  }
  throw new UsageError(
    `Invalid --target "${raw}": expected http://host:port or kafka://host:port[/topic]`,
  );
}

/** The target as shown in reports. */
export function describeTarget(t: Target): string {
  return t.kind === "http" ? t.url : `kafka://${t.brokers.join(",")}/${t.topic}`;
}

// ---------------------------------------------------------------------------------------------
// Pacing

/**
 * A token bucket: tokens flow in at `rate(elapsedMs)` per second up to `capacity`, one per event.
 * The cap is what keeps the pace: after a stall the sender catches up by at most `capacity` events.
 */
export class TokenBucket {
  readonly #rate: (elapsedMs: number) => number;
  readonly #capacity: number;
  readonly #now: () => number;
  #tokens = 0;
  #at: number;

  constructor(rate: (elapsedMs: number) => number, capacity: number, now: () => number) {
    this.#rate = rate;
    this.#capacity = capacity;
    this.#now = now;
    this.#at = now();
  }

  #refill(): void {
    const t = this.#now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + ((t - this.#at) * this.#rate(t)) / 1000);
    this.#at = t;
  }

  /** Drops the tokens there are. */
  drain(): void {
    this.#refill();
    this.#tokens = 0;
  }

  /** Takes up to `max` whole tokens; returns how many. */
  take(max: number): number {
    this.#refill();
    const n = Math.max(0, Math.min(Math.floor(this.#tokens), max));
    this.#tokens -= n;
    return n;
  }

  /** Milliseconds until `n` tokens (at most the capacity) are there, at the current rate. */
  msUntil(n: number): number {
    this.#refill();
    const missing = Math.min(n, this.#capacity) - this.#tokens;
    return missing <= 0 ? 0 : (missing * 1000) / this.#rate(this.#at);
  }
}

/** The rate at a time into the run: the base rate, times the factor during a burst. */
export function rateSchedule(
  rate: number,
  burst: Burst | undefined,
): (elapsedMs: number) => number {
  if (!burst) return () => rate;
  const from = burst.startS * 1000, to = (burst.startS + burst.lengthS) * 1000;
  return (ms) => (ms >= from && ms < to ? rate * burst.factor : rate);
}

/**
 * A `Retry-After` value in ms: delay-seconds or an HTTP date (RFC 9110 §10.2.3); undefined when
 * absent or unreadable.
 */
export function parseRetryAfter(value: string | null, nowMs = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

// ---------------------------------------------------------------------------------------------
// Sinks

/** What one attempt to deliver a batch came to. */
export type Outcome =
  | { kind: "done"; accepted: number; rejected: number; note?: string }
  | { kind: "retry"; reason: string; throttled: boolean; retryAfterMs?: number }
  | { kind: "fatal"; reason: string };

/** Where batches go. `prepare` encodes a batch once; the attempt it returns may be repeated. */
export interface Sink {
  readonly name: string;
  /** Fails with a clear message when the target cannot be reached. */
  check(): Promise<void>;
  prepare(events: ClientEvent[]): () => Promise<Outcome>;
  close(): Promise<void>;
}

/** Options of {@link HttpSink}. */
export interface HttpSinkOptions {
  format: "json" | "ndjson";
  timeoutMs: number;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** `POST /events` with a JSON array or NDJSON body. */
export class HttpSink implements Sink {
  readonly name: string;
  readonly #url: string;
  readonly #opts: HttpSinkOptions;
  readonly #fetch: typeof fetch;

  constructor(url: string, options: HttpSinkOptions) {
    this.name = url;
    this.#url = url;
    this.#opts = options;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  async check(): Promise<void> {
    const health = new URL("/health", this.#url).href;
    try {
      const res = await this.#fetch(health, { signal: AbortSignal.timeout(5000) });
      await res.body?.cancel();
    } catch (err) {
      throw new Error(`Cannot reach the gateway at ${health}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  prepare(events: ClientEvent[]): () => Promise<Outcome> {
    const ndjson = this.#opts.format === "ndjson";
    const body = ndjson
      ? events.map((e) => JSON.stringify(e)).join("\n") + "\n"
      : JSON.stringify(events);
    const headers = { "content-type": ndjson ? "application/x-ndjson" : "application/json" };
    return async () => {
      let res: Response, text: string;
      try {
        res = await this.#fetch(this.#url, {
          method: "POST",
          headers,
          body,
          signal: AbortSignal.timeout(this.#opts.timeoutMs),
        });
        text = await res.text();
      } catch (err) {
        return {
          kind: "retry",
          reason: `POST failed: ${(err as Error).message}`,
          throttled: false,
        };
      }
      const json = parseJson(text);
      if (res.status === 200 || res.status === 202 || res.status === 422) {
        const rejected = Array.isArray(json?.rejected) ? json.rejected as unknown[] : [];
        const out: Outcome = {
          kind: "done",
          accepted: typeof json?.accepted === "number" ? json.accepted : 0,
          rejected: rejected.length,
        };
        // A rejection means the generator built a bad event: say which rule it broke.
        const issue = (rejected[0] as { issues?: { path: string; message: string }[] })
          ?.issues?.[0];
        if (issue) out.note = `rejected: ${issue.path || "event"}: ${issue.message}`;
        return out;
      }
      const message = (json?.error as { message?: unknown } | undefined)?.message;
      const reason = `HTTP ${res.status}${
        typeof message === "string" ? `: ${message}` : text ? `: ${text.slice(0, 120)}` : ""
      }`;
      if (res.status === 429 || res.status === 503) {
        const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
        return retryAfterMs === undefined
          ? { kind: "retry", reason, throttled: true }
          : { kind: "retry", reason, throttled: true, retryAfterMs };
      }
      if (res.status === 408 || res.status >= 500) {
        return { kind: "retry", reason, throttled: false };
      }
      return { kind: "fatal", reason };
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text);
    return typeof v === "object" && v !== null ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Produces to a topic through `pipeline/kafka.ts` (the only kafkajs importer; loaded only for
 * Kafka targets): an idempotent producer, acks from all in-sync replicas, keyed by user so one
 * user's events stay in order, as the gateway's own producer does.
 */
async function kafkaSink(brokers: string[], topic: string): Promise<Sink> {
  // kafkajs warns once about its v2 partitioner change; the key-hash default is what we want.
  Deno.env.set("KAFKAJS_NO_PARTITIONER_WARNING", "1");
  const { createKafka } = await import("../pipeline/kafka/client.ts");
  const { createLogger } = await import("../shared/logger.ts");
  const kafka = createKafka({
    brokers,
    clientId: "streamgate-generate",
    connectionTimeoutMs: 5000,
    // Its log lines would tear the progress bar; what failed shows in the summary's errors.
    logger: createLogger({ write: () => {} }),
  });
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  const where = `kafka://${brokers.join(",")}`;
  return {
    name: `${where}/${topic}`,
    async check() {
      const admin = kafka.admin();
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        // kafkajs retries a refused connection for about 20 s; a missing broker is said sooner.
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("no answer within 5 s")), 5000);
        });
        await Promise.race([
          admin.connect().then(() => admin.fetchTopicMetadata({ topics: [topic] })),
          late,
        ]);
      } catch (err) {
        const message = `Cannot produce to topic "${topic}" on ${where}: ${(err as Error).message}`;
        throw new Error(message, { cause: err });
      } finally {
        clearTimeout(timer);
        admin.disconnect().catch(() => {});
      }
      await producer.connect();
    },
    prepare(events) {
      const messages = events.map((e) => ({ key: e.user_id, value: JSON.stringify(e) }));
      return async () => {
        try {
          await producer.send({ topic, acks: -1, messages });
          return { kind: "done", accepted: events.length, rejected: 0 };
        } catch (err) {
          return {
            kind: "retry",
            reason: `producing failed: ${(err as Error).message}`,
            throttled: false,
          };
        }
      };
    },
    async close() {
      await producer.disconnect();
    },
  };
}

/** The sink of a target. */
export async function createSink(o: Pick<GenerateOptions, "target" | "format" | "timeoutMs">) {
  return o.target.kind === "http"
    ? new HttpSink(o.target.url, { format: o.format, timeoutMs: o.timeoutMs })
    : await kafkaSink(o.target.brokers, o.target.topic);
}

// ---------------------------------------------------------------------------------------------
// The run

/** Counters while running; the summary at the end. */
export interface Progress {
  elapsedMs: number;
  /** Share of the run done, 0..1. */
  fraction: number;
  /** Target rate now, events/s. */
  targetRate: number;
  sent: number;
  accepted: number;
  rejected: number;
  failed: number;
  retried: number;
  throttled: number;
  inFlight: number;
}

/** What a run did. */
export interface Summary {
  scenario: ScenarioName;
  target: string;
  seed: number;
  /** Events handed to the target (each once, however often its batch was retried). */
  sent: number;
  accepted: number;
  /** Refused by validation (they went to the dead-letter destination). */
  rejected: number;
  /** Requests sent again after a failure or a 429/503. */
  retried: number;
  /** 429/503 answers. */
  throttled: number;
  /** Events of batches finally lost. */
  failed: number;
  batches: number;
  lost_batches: number;
  /** Events/s: the target, its burst peak, and delivered (accepted + rejected) over the run. */
  rate: { target: number; peak: number; achieved: number };
  /** Round trip of the requests that delivered a batch. */
  latency_ms: { p50: number; p99: number; max: number };
  duration_s: number;
  interrupted: boolean;
  /** Who attacks (attack scenarios). */
  attack: Record<string, unknown>;
  /** Distinct failure reasons and how often each was seen. */
  errors: Record<string, number>;
}

/** Options of {@link runGenerator}. */
export interface RunOptions {
  scenario: Scenario;
  sink: Sink;
  rate: number;
  limit: Limit;
  batch: number;
  concurrency: number;
  retries: number;
  burst?: Burst | undefined;
  seed?: number;
  /** Longest a partial batch waits for more events. @default 100 */
  lingerMs?: number;
  /** Stops generating; batches being retried are given up. */
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** How often `onProgress` is called. @default 1000 */
  progressEveryMs?: number;
}

/** Sends the scenario's events to the sink at the rate until the limit; resolves with the summary. */
export async function runGenerator(o: RunOptions): Promise<Summary> {
  const linger = o.lingerMs ?? 100;
  const rateAt = rateSchedule(o.rate, o.burst);
  const peak = o.rate * (o.burst?.factor ?? 1);
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  // One second of tokens: a stall (a slow answer, all slots busy) is made up for afterwards, so
  // the run keeps its rate; a longer one is not, so the gateway never gets more than that at once.
  const bucket = new TokenBucket(rateAt, Math.max(o.batch, Math.ceil(peak)), elapsed);
  const signal = o.signal ?? new AbortController().signal;
  const c = { sent: 0, accepted: 0, rejected: 0, failed: 0, retried: 0, throttled: 0 };
  let batches = 0, lost = 0;
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  const note = (reason: string) => errors.set(reason, (errors.get(reason) ?? 0) + 1);
  /** Requests in flight, with the users whose events they carry. */
  const inFlight = new Map<Promise<void>, Set<string>>();
  let pausedUntil = 0; // elapsed ms before which no request goes out (a 429/503 said so)
  let generated = 0;
  const total = o.limit.kind === "events" ? o.limit.count : Infinity;
  const endMs = o.limit.kind === "duration" ? o.limit.seconds * 1000 : Infinity;

  const progress = (): Progress => ({
    elapsedMs: elapsed(),
    fraction: Math.min(1, o.limit.kind === "events" ? c.sent / total : elapsed() / endMs),
    targetRate: rateAt(elapsed()),
    ...c,
    inFlight: inFlight.size,
  });
  const ticker = o.onProgress
    ? setInterval(() => o.onProgress!(progress()), o.progressEveryMs ?? 1000)
    : undefined;

  async function deliver(events: ClientEvent[]): Promise<void> {
    const attempt = o.sink.prepare(events);
    for (let i = 0;; i++) {
      const start = performance.now();
      const out = await attempt();
      if (out.kind === "done") {
        latencies.push(performance.now() - start);
        c.accepted += out.accepted;
        c.rejected += out.rejected;
        if (out.note) note(out.note);
        batches++;
        return;
      }
      note(out.reason);
      if (out.kind === "fatal") break;
      if (out.throttled) c.throttled++;
      if (i >= o.retries || signal.aborted) break;
      const wait = Math.min(60_000, out.retryAfterMs ?? backoff(i));
      // Throttling is about the gateway, not this batch: every sender holds back.
      if (out.throttled) {
        pausedUntil = Math.max(pausedUntil, elapsed() + wait);
        // Events not sent while told to wait are not owed: no burst when the pause ends.
        bucket.drain();
      }
      await sleep(wait, signal);
      await sleep(pausedUntil - elapsed(), signal);
      if (signal.aborted) break;
      c.retried++;
    }
    c.failed += events.length;
    lost++;
  }

  /** Generated events not sent yet, oldest first. */
  let pending: GeneratedEvent[] = [];
  let pendingSince = 0;
  /**
   * Users held back: a barrier event waits until no request in flight carries its user's events,
   * and the user's later events queue behind it. One user's order holds; nobody else waits.
   */
  const held = new Map<string, GeneratedEvent[]>();
  const holds = new Set<Promise<void>>();
  const carries = (user: string) => [...inFlight.values()].some((users) => users.has(user));

  function hold(user: string, g: GeneratedEvent): void {
    held.set(user, [g]);
    const h: Promise<void> = settled(inFlight, user).then(() => {
      if (pending.length === 0) pendingSince = elapsed();
      pending.unshift(...held.get(user)!); // older than anything pending behind them
      held.delete(user);
      holds.delete(h);
    });
    holds.add(h);
  }

  /** Sends the oldest pending events that may go now, at most a batch. */
  async function dispatch(): Promise<void> {
    while (inFlight.size >= o.concurrency) await Promise.race(inFlight.keys());
    await sleep(pausedUntil - elapsed(), signal);
    const events: ClientEvent[] = [];
    let i = 0;
    for (; i < pending.length && events.length < o.batch; i++) {
      const g = pending[i]!;
      const user = g.event.user_id;
      const queue = held.get(user);
      if (queue) queue.push(g);
      else if (g.barrier && carries(user)) hold(user, g);
      else events.push(g.event);
    }
    pending = pending.slice(i);
    if (pending.length > 0) pendingSince = elapsed();
    if (events.length === 0) return;
    c.sent += events.length;
    const p: Promise<void> = deliver(events).finally(() => inFlight.delete(p));
    inFlight.set(p, new Set(events.map((e) => e.user_id)));
  }

  try {
    while (!signal.aborted && generated < total && elapsed() < endMs) {
      await sleep(pausedUntil - elapsed(), signal);
      const n = bucket.take(Math.min(Math.max(0, o.batch - pending.length), total - generated));
      for (let i = 0; i < n; i++) {
        if (pending.length === 0) pendingSince = elapsed();
        pending.push(o.scenario.next());
        generated++;
      }
      const full = pending.length >= o.batch || (generated >= total && pending.length > 0);
      if (full || (pending.length > 0 && elapsed() - pendingSince >= linger)) {
        await dispatch();
        continue;
      }
      const wait = pending.length === 0
        ? bucket.msUntil(1)
        : Math.min(bucket.msUntil(o.batch - pending.length), linger - (elapsed() - pendingSince));
      await sleep(Math.max(1, Math.min(wait, endMs - elapsed())), signal);
    }
    // What was generated goes out, held users' events once they may (not after an interrupt).
    while (!signal.aborted && (pending.length > 0 || held.size > 0)) {
      if (pending.length > 0) await dispatch();
      else await Promise.race(holds);
    }
    await settled(inFlight);
  } finally {
    clearInterval(ticker);
  }
  o.onProgress?.(progress());

  const ms = elapsed();
  latencies.sort((a, b) => a - b);
  const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
  return {
    scenario: o.scenario.name,
    target: o.sink.name,
    seed: o.seed ?? 0,
    ...c,
    batches,
    lost_batches: lost,
    rate: { target: o.rate, peak, achieved: round((c.accepted + c.rejected) / (ms / 1000)) },
    latency_ms: {
      p50: round(percentile(latencies, 0.5), 2),
      p99: round(percentile(latencies, 0.99), 2),
      max: round(latencies.at(-1) ?? 0, 2),
    },
    duration_s: round(ms / 1000, 3),
    interrupted: signal.aborted,
    attack: o.scenario.attack,
    errors: Object.fromEntries(errors),
  };
}

/** Waits until no request in flight carries the user's events (no request at all, without one). */
async function settled(inFlight: Map<Promise<void>, Set<string>>, user?: string): Promise<void> {
  for (;;) {
    const waits = [...inFlight].filter(([, users]) => user === undefined || users.has(user));
    if (waits.length === 0) return;
    await Promise.all(waits.map(([p]) => p));
  }
}

/** Nearest-rank percentile of sorted values; 0 for none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

/** Exponential backoff with jitter: ~100 ms, 200 ms, … up to 5 s. */
function backoff(attempt: number): number {
  return Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
}

/** Sleeps `ms` (nothing for ≤ 0); an abort cuts it short. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// Reporting

const enc = new TextEncoder();

/** Writes progress to stderr: a redrawn bar on a terminal, else a plain line each time. */
export function progressWriter(
  label: string,
  tty: boolean,
  write: (s: string) => void = (s) => void Deno.stderr.writeSync(enc.encode(s)),
  columns: () => number = terminalColumns,
): { update(p: Progress): void; end(): void } {
  let last = { at: 0, sent: 0 };
  let rate = 0;
  return {
    update(p) {
      const dt = p.elapsedMs - last.at;
      if (dt >= 250) {
        rate = ((p.sent - last.sent) * 1000) / dt;
        last = { at: p.elapsedMs, sent: p.sent };
      }
      const pct = Math.floor(p.fraction * 100);
      const stats = `${p.sent} sent  ${Math.round(rate)}/s (target ${
        Math.round(p.targetRate)
      })  ok ${p.accepted}  rej ${p.rejected}  retried ${p.retried}  lost ${p.failed}  in flight ${p.inFlight}  ${
        (p.elapsedMs / 1000).toFixed(1)
      }s`;
      if (tty) {
        const width = 24, filled = Math.round(p.fraction * width);
        const bar = "#".repeat(filled) + "-".repeat(width - filled);
        // Cut to the terminal's width: a wrapped line cannot be redrawn with a carriage return.
        const line = `${label} [${bar}] ${String(pct).padStart(3)}%  ${stats}`;
        write(`\r\x1b[2K${line.slice(0, columns() - 1)}`);
      } else {
        write(`${label} ${pct}%  ${stats}\n`);
      }
    },
    end() {
      if (tty) write("\r\x1b[2K");
    },
  };
}

function terminalColumns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80; // stdout is not a terminal; stderr's width is not known
  }
}

/** The summary for people. */
export function formatSummary(s: Summary): string {
  const lines = [
    `scenario   ${s.scenario} (seed ${s.seed}) → ${s.target}${
      s.interrupted ? "  [interrupted]" : ""
    }`,
    `sent       ${s.sent} events in ${s.batches + s.lost_batches} batches`,
    `accepted   ${s.accepted}`,
    `rejected   ${s.rejected}`,
    `retried    ${s.retried} requests (${s.throttled} answers were 429/503)`,
    `failed     ${s.failed} events (${s.lost_batches} batches lost)`,
    `rate       ${s.rate.achieved} events/s achieved, target ${s.rate.target}${
      s.rate.peak !== s.rate.target ? ` (peak ${s.rate.peak})` : ""
    }`,
    `latency    p50 ${s.latency_ms.p50} ms  p99 ${s.latency_ms.p99} ms  max ${s.latency_ms.max} ms`,
    `duration   ${s.duration_s} s`,
  ];
  const attack = Object.entries(s.attack).map(([k, v]) =>
    `${k.replaceAll("_", " ")} ${Array.isArray(v) ? v.join(" ") : v}`
  );
  if (attack.length > 0) lines.push(`attack     ${attack.join(", ")}`);
  for (const [reason, n] of Object.entries(s.errors).slice(0, 5)) {
    lines.push(`error      ${n} x ${reason}`);
  }
  return lines.join("\n");
}

/** The command: parse, check the target, run, report; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  let o: GenerateOptions;
  try {
    const parsed = parseArgs(args);
    if (parsed === "help") {
      console.log(USAGE);
      return 0;
    }
    o = parsed;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`generate: ${err.message}\nRun with --help for usage.`);
    return 2;
  }

  let sink: Sink;
  try {
    sink = await createSink(o);
    await sink.check();
  } catch (err) {
    console.error(`generate: ${(err as Error).message}`);
    return 1;
  }

  const abort = new AbortController();
  let interrupts = 0;
  const onInterrupt = () => {
    // First Ctrl-C: stop and report; a second one: leave now.
    if (++interrupts > 1) Deno.exit(130);
    abort.abort();
  };
  Deno.addSignalListener("SIGINT", onInterrupt);

  const tty = Deno.stderr.isTerminal();
  const writer = o.quiet ? undefined : progressWriter(o.scenario, tty);
  let summary: Summary;
  try {
    summary = await runGenerator({
      scenario: createScenario(o.scenario, {
        seed: o.seed,
        users: o.users,
        attackShare: o.attackShare,
      }),
      sink,
      rate: o.rate,
      limit: o.limit,
      batch: o.batch,
      concurrency: o.concurrency,
      retries: o.retries,
      burst: o.burst,
      seed: o.seed,
      signal: abort.signal,
      ...(writer ? { onProgress: writer.update, progressEveryMs: tty ? 100 : 2000 } : {}),
    });
  } finally {
    writer?.end();
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await sink.close().catch(() => {});
  }
  console.log(o.json ? JSON.stringify(summary) : formatSummary(summary));
  return summary.failed > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
