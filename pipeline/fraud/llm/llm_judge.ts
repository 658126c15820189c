/**
 * The LLM judge: asks a local Ollama model for a fraud verdict on one user's recent window, after
 * the rules fired.
 *
 * The judge is advisory and must never hurt the pipeline, so {@linkcode LlmJudge.judge} never
 * rejects and everything about it is bounded:
 *
 * - every attempt has its own deadline (`ollama.ts`), so a hanging server costs at most
 *   `timeoutMs` per attempt;
 * - retryable failures (timeouts, HTTP 5xx, network errors, invalid replies) are retried
 *   `retries` times with exponential backoff and jitter (`retry.ts`); HTTP 4xx (e.g. a missing
 *   model) is not;
 * - at most `concurrency` calls run at once and at most `maxQueue` wait; beyond that the answer is
 *   "queue full" at once (`concurrency_limit.ts`);
 * - a circuit breaker stops calling after `breakerThreshold` consecutive failed calls and lets one
 *   trial call through after `breakerResetMs` (`circuit_breaker.ts`);
 * - a per-user cooldown keeps a noisy user from costing one model call per alert; the same `key`
 *   (e.g. an alert id) within the cooldown gets the cached verdict back instead (`cooldown.ts`).
 *
 * The model only ever sees the request as JSON data between delimiters (`prompt.ts`), and its reply
 * is parsed and validated with zod before anyone sees it (`verdict.ts`).
 *
 * @module
 */
import type { LlmOutcome, Metrics } from "../../../shared/metrics.ts";
import { CircuitBreaker } from "./circuit_breaker.ts";
import { ConcurrencyLimit } from "./concurrency_limit.ts";
import { UserCooldown } from "./cooldown.ts";
import { OllamaClient } from "./ollama.ts";
import { buildMessages, type VerdictRequest } from "./prompt.ts";
import { retry } from "./retry.ts";
import { messageOf } from "./text.ts";
import type { Verdict } from "./verdict.ts";

/** Either a verdict or why there is none. */
export type VerdictOutcome =
  | { status: "ok"; verdict: Verdict; model: string; latencyMs: number; attempts: number }
  | { status: "unavailable"; reason: string };

/** Options of {@linkcode LlmJudge}. */
export interface LlmJudgeOptions {
  /** Ollama base URL, e.g. `http://127.0.0.1:11434`. */
  host: string;
  /** Model name, e.g. `llama3.2:1b`. */
  model: string;
  /** Deadline of one attempt, in ms. Default 10 000. */
  timeoutMs?: number;
  /**
   * Extra attempts after the first for retryable failures (timeouts, 5xx, network errors, invalid
   * replies). HTTP 4xx (e.g. 404 model missing) is not retried. Default 1.
   */
  retries?: number;
  /** Base backoff in ms before a retry; exponential with jitter. Default 250. */
  backoffMs?: number;
  /** Calls in flight at once. Default 2. */
  concurrency?: number;
  /** Calls waiting beyond `concurrency`; more are answered "queue full" at once. Default 32. */
  maxQueue?: number;
  /**
   * Per user: after a verdict, further calls for that user within this many ms are answered
   * "cooldown", except those with the same `key`, which get the cached outcome. Default 60 000.
   */
  cooldownMs?: number;
  /** Consecutive failed calls (after retries) that open the circuit. Default 3. */
  breakerThreshold?: number;
  /** How long the circuit stays open before one half-open trial call, in ms. Default 30 000. */
  breakerResetMs?: number;
  /** Clock (ms since epoch) for cooldown and breaker; tests inject it. Default `Date.now`. */
  now?: () => number;
  /** `fetch` handed to the ollama client (tests may wrap it). Default the global `fetch`. */
  fetch?: typeof fetch;
  /** Counts requests by outcome and times the calls that reach the model. */
  metrics?: Metrics;
}

/** A snapshot of the judge's state, for metrics and `/ready`. */
export interface LlmJudgeState {
  breaker: "closed" | "open" | "half-open";
  /** Calls holding a concurrency slot (running or backing off). */
  inFlight: number;
  /** Calls waiting for a slot. */
  queued: number;
  /** Calls that went to the model (each counts once, whatever its attempts). */
  calls: number;
  /** Of those, how many ended without a verdict (shutdown aborts not counted). */
  failures: number;
}

const SHUTTING_DOWN: VerdictOutcome = Object.freeze({
  status: "unavailable",
  reason: "shutting down",
});

function unavailable(reason: string): VerdictOutcome {
  return { status: "unavailable", reason };
}

function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value >= 0 ? value : fallback;
}

/** Outcome kinds by the start of the reason this module gives them; anything else is "error". */
const REASON_KINDS: readonly [prefix: string, kind: LlmOutcome][] = [
  ["timeout", "timeout"],
  ["invalid reply", "invalid_reply"],
  ["circuit", "circuit_open"],
  ["queue full", "queue_full"],
  ["cooldown", "cooldown"],
  ["shutting down", "shutdown"],
];

/** The metrics label of an outcome: `ok`, `timeout`, `circuit_open`, … (see {@link LlmOutcome}). */
export function outcomeKind(outcome: VerdictOutcome): LlmOutcome {
  if (outcome.status === "ok") return "ok";
  return REASON_KINDS.find(([prefix]) => outcome.reason.startsWith(prefix))?.[1] ?? "error";
}

/**
 * Asks an Ollama model for fraud verdicts, with deadlines, retries, a concurrency limit, a
 * circuit breaker and a per-user cooldown. See the module doc.
 *
 * ```ts
 * const judge = new LlmJudge({ host: "http://127.0.0.1:11434", model: "llama3.2:1b" });
 * const outcome = await judge.judge(request, alertId);
 * if (outcome.status === "ok") console.log(outcome.verdict);
 * await judge.close();
 * ```
 */
export class LlmJudge {
  readonly #model: string;
  readonly #retries: number;
  readonly #backoffMs: number;
  readonly #metrics: Metrics | undefined;

  readonly #closing = new AbortController();
  readonly #running = new Set<Promise<VerdictOutcome>>();
  readonly #client: OllamaClient;
  readonly #slots: ConcurrencyLimit;
  readonly #breaker: CircuitBreaker;
  readonly #cooldown: UserCooldown<VerdictOutcome>;
  #calls = 0;
  #failures = 0;

  /** Creates a judge; no connection is made until the first call. */
  constructor(options: LlmJudgeOptions) {
    const now = options.now ?? Date.now;
    this.#model = options.model;
    this.#retries = Math.floor(positive(options.retries, 1));
    this.#backoffMs = positive(options.backoffMs, 250);
    this.#metrics = options.metrics;
    this.#client = new OllamaClient({
      host: options.host,
      model: options.model,
      timeoutMs: Math.max(1, positive(options.timeoutMs, 10_000)),
      fetch: options.fetch ?? globalThis.fetch,
      signal: this.#closing.signal,
    });
    this.#slots = new ConcurrencyLimit(
      Math.max(1, Math.floor(positive(options.concurrency, 2))),
      Math.floor(positive(options.maxQueue, 32)),
    );
    this.#breaker = new CircuitBreaker({
      threshold: Math.max(1, Math.floor(positive(options.breakerThreshold, 3))),
      resetMs: positive(options.breakerResetMs, 30_000),
      now,
    });
    this.#cooldown = new UserCooldown({ cooldownMs: positive(options.cooldownMs, 60_000), now });
  }

  /** A snapshot of the breaker, the slots and the counters. */
  get state(): LlmJudgeState {
    return {
      breaker: this.#breaker.state,
      inFlight: this.#slots.inFlight,
      queued: this.#slots.queued,
      calls: this.#calls,
      failures: this.#failures,
    };
  }

  /**
   * Asks for a verdict on `req`. Never rejects: without a verdict the outcome says why.
   *
   * `key` (e.g. an alert id) dedupes: while a call for the user is in progress, or within the
   * cooldown after its verdict, a call with the same key gets that same outcome; calls for the
   * user with another (or no) key get "cooldown".
   */
  async judge(req: VerdictRequest, key?: string): Promise<VerdictOutcome> {
    const reuse = { cached: false };
    const outcome = await this.#judge(req, key, reuse);
    this.#metrics?.llmCall(reuse.cached ? "cached" : outcomeKind(outcome));
    return outcome;
  }

  /** {@link judge}; sets `reuse.cached` when the outcome is an earlier one for the same key. */
  async #judge(
    req: VerdictRequest,
    key: string | undefined,
    reuse: { cached: boolean },
  ): Promise<VerdictOutcome> {
    try {
      if (this.#closing.signal.aborted) return SHUTTING_DOWN;
      const userId = req.userId;

      const seen = this.#cooldown.check(userId, key);
      if (seen !== undefined) {
        if ("refuse" in seen) return unavailable(seen.refuse);
        reuse.cached = true;
        return await seen.reuse;
      }

      const admission = this.#breaker.admit();
      if ("reason" in admission) return unavailable(admission.reason);
      const slot = this.#slots.acquire();
      if (slot === null) {
        if (admission.trial) this.#breaker.abandonTrial();
        return unavailable("queue full");
      }

      const promise = this.#execute(req, key, slot, admission.trial);
      this.#cooldown.track(userId, key, promise);
      this.#running.add(promise);
      promise.then(() => this.#running.delete(promise));
      return await promise;
    } catch (error) {
      return unavailable(`internal error: ${messageOf(error)}`);
    }
  }

  /** `GET /api/version`, bounded by `timeoutMs`; rejects when Ollama is unreachable. */
  async ping(): Promise<void> {
    if (this.#closing.signal.aborted) throw new Error("LLM judge is closed");
    await this.#client.ping();
  }

  /**
   * Aborts in-flight and queued calls (they resolve "unavailable": "shutting down") and waits
   * for them to settle. Later calls resolve "shutting down" too.
   */
  async close(): Promise<void> {
    if (!this.#closing.signal.aborted) {
      this.#closing.abort();
      this.#slots.refuseWaiting();
    }
    await Promise.allSettled([...this.#running]);
  }

  async #execute(
    req: VerdictRequest,
    key: string | undefined,
    slot: Promise<boolean>,
    trial: boolean,
  ): Promise<VerdictOutcome> {
    if (!await slot) {
      if (trial) this.#breaker.abandonTrial();
      return SHUTTING_DOWN;
    }
    try {
      if (this.#closing.signal.aborted) {
        if (trial) this.#breaker.abandonTrial();
        return SHUTTING_DOWN;
      }
      if (!trial && this.#breaker.state !== "closed") {
        // The circuit opened while this call waited for a slot.
        const admission = this.#breaker.admit();
        if ("reason" in admission) return unavailable(admission.reason);
        trial = admission.trial;
      }
      this.#calls++;
      const started = performance.now();
      const outcome = await this.#callWithRetries(req);
      if (outcome !== SHUTTING_DOWN) this.#metrics?.llmCallDuration(performance.now() - started);
      if (outcome.status === "ok") {
        this.#breaker.recordSuccess();
        this.#cooldown.remember(req.userId, key, outcome);
      } else if (outcome === SHUTTING_DOWN) {
        if (trial) this.#breaker.abandonTrial();
      } else {
        this.#failures++;
        this.#breaker.recordFailure(trial);
      }
      return outcome;
    } catch (error) {
      if (trial) this.#breaker.abandonTrial();
      return unavailable(`internal error: ${messageOf(error)}`);
    } finally {
      this.#slots.release();
    }
  }

  async #callWithRetries(req: VerdictRequest): Promise<VerdictOutcome> {
    const messages = buildMessages(req);
    const started = performance.now();
    const result = await retry(() => this.#client.chat(messages), {
      retries: this.#retries,
      backoffMs: this.#backoffMs,
      signal: this.#closing.signal,
    });
    if ("aborted" in result) return SHUTTING_DOWN;
    if (result.ok) {
      return {
        status: "ok",
        verdict: result.value.verdict,
        model: this.#model,
        latencyMs: Math.round(performance.now() - started),
        attempts: result.attempts,
      };
    }
    const suffix = result.attempts > 1 ? ` (${result.attempts} attempts)` : "";
    return unavailable(`${result.failure.reason}${suffix}`);
  }
}
