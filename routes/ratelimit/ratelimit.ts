/**
 * Per-key rate limits: a small {@link RateLimiter} interface with two implementations that keep
 * one contract (`tests/rate_limiter_contract.ts`), {@link MemoryRateLimiter} for one process (the
 * embedded default) and `UpstashRateLimiter` (`upstash.ts`, `@upstash/ratelimit`) shared
 * by every gateway through Redis; and {@link RateLimitGuard}, which decides what happens when the
 * store cannot be reached: fail open (let the request through) or closed (refuse it).
 *
 * The algorithm is `@upstash/ratelimit`'s sliding window, which the memory limiter copies so that
 * both answer alike: a counter per fixed window, and a request is allowed while
 * `floor(previous × (1 − elapsed fraction of the current window)) + current < limit`. A refused
 * request is not counted, so a client that keeps retrying gets through as soon as the window
 * slides. The unit is a request, not an event: the limit is checked before the body is read (so
 * that refusing costs nothing), when the number of events is not known yet; `MAX_EVENTS_PER_REQUEST`
 * bounds the events one request can carry.
 *
 * No `hono` here: the HTTP side (429, `Retry-After`, `RateLimit-*`) is `rateLimit()` in
 * `middleware.ts`.
 *
 * @module
 */
import type { Logger } from "../../shared/logger.ts";

/** The answer to one request. */
export interface RateLimitDecision {
  /** Whether the request is within the limit (it was counted) or not (it was not). */
  allowed: boolean;
  /** Requests allowed per window. */
  limit: number;
  /** Requests left in the window after this one; 0 when refused. */
  remaining: number;
  /** When the current window ends, in ms since the epoch: a refused client may retry then. */
  resetAt: number;
}

/** A rate limit store: counts requests per key in a sliding window. */
export interface RateLimiter {
  /** "memory" or "upstash". */
  readonly kind: string;
  /** Requests per window and the window's length. */
  readonly policy: { readonly limit: number; readonly windowMs: number };
  /** Counts one request for `key` if it is within the limit. Rejects when the store fails. */
  limit(key: string): Promise<RateLimitDecision>;
  /** Releases what the limiter holds. Safe to call twice. */
  close(): Promise<void>;
}

/** Checks a limit and window length, naming the bad one. */
export function checkPolicy(limit: number, windowMs: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`limit must be a positive integer, got ${limit}`);
  }
  if (!Number.isSafeInteger(windowMs) || windowMs < 1) {
    throw new RangeError(`windowMs must be a positive integer, got ${windowMs}`);
  }
}

/** Options of {@link MemoryRateLimiter}. */
export interface MemoryRateLimiterOptions {
  /** Requests allowed per window. */
  limit: number;
  /** Length of the window in ms. */
  windowMs: number;
  /**
   * Most keys held; the least recently used is dropped first (and so starts again from zero).
   * About 100 bytes each. @default 100000
   */
  maxKeys?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

/** Counts of one key: the window index they belong to, this window's and the previous one's. */
interface Counts {
  window: number;
  current: number;
  previous: number;
}

/** A {@link RateLimiter} in this process's memory: limits hold per process, not per cluster. */
export class MemoryRateLimiter implements RateLimiter {
  /** Always "memory". */
  readonly kind = "memory";
  readonly policy: { readonly limit: number; readonly windowMs: number };
  /** Insertion order is use order: the first key is the least recently used. */
  readonly #keys = new Map<string, Counts>();
  readonly #maxKeys: number;
  readonly #now: () => number;

  constructor(options: MemoryRateLimiterOptions) {
    const { limit, windowMs, maxKeys = 100_000, now = Date.now } = options;
    checkPolicy(limit, windowMs);
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) {
      throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
    }
    this.policy = { limit, windowMs };
    this.#maxKeys = maxKeys;
    this.#now = now;
  }

  /** Keys held (never more than `maxKeys`). */
  get size(): number {
    return this.#keys.size;
  }

  /** Counts one request for `key`; never rejects. */
  limit(key: string): Promise<RateLimitDecision> {
    const { limit, windowMs } = this.policy;
    const now = this.#now();
    const window = Math.floor(now / windowMs);
    const counts = this.#take(key, window);
    const resetAt = (window + 1) * windowMs;
    // The same arithmetic as @upstash/ratelimit's sliding window script.
    const previous = Math.floor((1 - (now % windowMs) / windowMs) * counts.previous);
    if (previous + counts.current >= limit) {
      return Promise.resolve({ allowed: false, limit, remaining: 0, resetAt });
    }
    counts.current++;
    return Promise.resolve({
      allowed: true,
      limit,
      remaining: Math.max(0, limit - (counts.current + previous)),
      resetAt,
    });
  }

  /** Drops every key. */
  close(): Promise<void> {
    this.#keys.clear();
    return Promise.resolve();
  }

  /** The counts of `key` moved to `window`, marked most recently used, evicting if full. */
  #take(key: string, window: number): Counts {
    let counts = this.#keys.get(key);
    if (counts === undefined) {
      counts = { window, current: 0, previous: 0 };
      while (this.#keys.size >= this.#maxKeys) {
        const oldest = this.#keys.keys().next();
        if (oldest.done === true) break;
        this.#keys.delete(oldest.value);
      }
    } else {
      this.#keys.delete(key);
      if (counts.window !== window) {
        counts.previous = counts.window === window - 1 ? counts.current : 0;
        counts.current = 0;
        counts.window = window;
      }
    }
    this.#keys.set(key, counts);
    return counts;
  }
}

/** What to do with a request when the rate limit store cannot be reached. */
export type FailurePolicy = "open" | "closed";

/** The outcome of {@link RateLimitGuard.check}. */
export type RateLimitVerdict =
  /** The store answered. */
  | { checked: true; decision: RateLimitDecision }
  /**
   * The store failed (now, or within the cooldown before): `policy` says whether the request
   * goes on (`open`) or is refused (`closed`, retry at `retryAt`, ms since the epoch).
   */
  | { checked: false; policy: FailurePolicy; retryAt: number };

/** Told for every request decided without the store (connect it to a metric). */
export interface DegradedEvent {
  policy: FailurePolicy;
  /** The store's last failure. */
  error: Error;
}

/** Options of {@link RateLimitGuard}. */
export interface RateLimitGuardOptions {
  /**
   * `open`: requests go through unlimited while the store is down; `closed`: they are refused
   * (503 + `Retry-After`). @default "open"
   */
  failure?: FailurePolicy;
  /**
   * After a failure, the store is left alone this long (each request is decided by `failure` at
   * once instead of waiting for a timeout). @default 1000
   */
  cooldownMs?: number;
  /** Called for every request decided without the store. Must not throw (a throw is ignored). */
  onDegraded?: (event: DegradedEvent) => void;
  /** Told once when the store fails and once when it answers again. Never told keys or tokens. */
  logger?: Logger;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

/** Longest store error message kept in a log line. */
const MAX_REASON = 300;

/**
 * A {@link RateLimiter} with a failure policy: {@link check} never rejects. After a failure it
 * leaves the store alone for `cooldownMs` (a circuit breaker), so that an outage costs each
 * request nothing rather than a timeout.
 */
export class RateLimitGuard {
  /** The store behind the guard. */
  readonly limiter: RateLimiter;
  /** What happens to requests while the store is down. */
  readonly failure: FailurePolicy;
  readonly #cooldownMs: number;
  readonly #onDegraded: ((event: DegradedEvent) => void) | undefined;
  readonly #logger: Logger | undefined;
  readonly #now: () => number;
  /** The store's last failure and until when it is left alone; undefined while it is healthy. */
  #outage: { error: Error; until: number } | undefined;

  constructor(limiter: RateLimiter, options: RateLimitGuardOptions = {}) {
    const { failure = "open", cooldownMs = 1000, onDegraded, logger, now = Date.now } = options;
    if (failure !== "open" && failure !== "closed") {
      throw new TypeError(`failure must be "open" or "closed", got ${JSON.stringify(failure)}`);
    }
    if (!Number.isSafeInteger(cooldownMs) || cooldownMs < 0) {
      throw new RangeError(`cooldownMs must be a non-negative integer, got ${cooldownMs}`);
    }
    this.limiter = limiter;
    this.failure = failure;
    this.#cooldownMs = cooldownMs;
    this.#onDegraded = onDegraded;
    this.#logger = logger;
    this.#now = now;
  }

  /** Whether the store failed and has not answered since. */
  get degraded(): boolean {
    return this.#outage !== undefined;
  }

  /** Counts one request for `key`; resolves to the store's decision or to the failure policy. */
  async check(key: string): Promise<RateLimitVerdict> {
    const outage = this.#outage;
    if (outage !== undefined && this.#now() < outage.until) return this.#unchecked(outage.error);
    let decision: RateLimitDecision;
    try {
      decision = await this.limiter.limit(key);
    } catch (cause) {
      const error = cause instanceof Error ? cause : new Error(String(cause));
      if (this.#outage === undefined) {
        this.#logger?.warn(
          `Rate limit store failed; failing ${this.failure} until it answers again`,
          { store: this.limiter.kind, policy: this.failure, reason: clip(error.message) },
        );
      }
      this.#outage = { error, until: this.#now() + this.#cooldownMs };
      return this.#unchecked(error);
    }
    if (this.#outage !== undefined) {
      this.#outage = undefined;
      this.#logger?.info("Rate limit store answers again", { store: this.limiter.kind });
    }
    return { checked: true, decision };
  }

  #unchecked(error: Error): RateLimitVerdict {
    try {
      this.#onDegraded?.({ policy: this.failure, error });
    } catch {
      // A metrics hook must not decide a request.
    }
    return {
      checked: false,
      policy: this.failure,
      retryAt: this.#outage?.until ?? this.#now() + this.#cooldownMs,
    };
  }
}

function clip(message: string): string {
  return message.length > MAX_REASON ? `${message.slice(0, MAX_REASON)}…` : message;
}
