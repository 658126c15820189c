/**
 * The Redis {@link RateLimiter}, with `@upstash/ratelimit`'s sliding window over Upstash's REST API
 * (the only module that imports `@upstash/ratelimit`; it builds its own `@upstash/redis` client,
 * configured like the window store's in `fraud/upstash.ts`). One request costs one REST call:
 * `EVALSHA` of the library's script (`EVAL` once more after a `NOSCRIPT`). Keys are
 * `<prefix>:<key>:<window index>`, each with a TTL of two windows and a second.
 *
 * Pinned to 2.0.8 on purpose: from 2.1.0 on, every script starts with
 * `#!lua flags=allow-key-locking`, a flag only Upstash's own servers know. Open-source Redis (7.0
 * here, and behind serverless-redis-http in compose.yaml) refuses such a script with
 * `ERR Unexpected flag in script shebang`, so every check would fail.
 *
 * A check that fails (network error, timeout, a Redis error) rejects: `RateLimitGuard` in
 * `ratelimit.ts` applies the failure policy. There are no retries, because a retried check could
 * count a request twice and a slow check delays the request it guards; the library's own timeout
 * (which silently allows the request) is off, and the client's `timeoutMs` aborts instead.
 *
 * Keys a limit refused are remembered in this process until their window ends (the library's
 * "ephemeral cache"), so a client hammering past its limit costs Redis nothing; that map is
 * bounded here, where the library's is not.
 *
 * @module
 */
import { Ratelimit } from "@upstash/ratelimit";
import { createUpstashClient } from "../../pipeline/fraud/upstash.ts";
import { checkPolicy, type RateLimitDecision, type RateLimiter } from "./ratelimit.ts";

/** Options of {@link UpstashRateLimiter}. */
export interface UpstashRateLimiterOptions {
  /** REST URL, e.g. `https://eu1-foo-12345.upstash.io`. */
  url: string;
  /** REST token. */
  token: string;
  /** Requests allowed per window. */
  limit: number;
  /** Length of the window in ms. */
  windowMs: number;
  /** Prefix of every Redis key. @default "streamgate:ratelimit" */
  prefix?: string;
  /** Most time one REST call may take, in ms. @default 500 */
  timeoutMs?: number;
  /** Most refused keys remembered in this process until their window ends. @default 10000 */
  blockedKeys?: number;
}

/** Longest Redis error kept in a message (the client appends the whole command, script and all). */
const MAX_REASON = 300;

/** A {@link RateLimiter} on Redis through the Upstash REST API, shared by every process. */
export class UpstashRateLimiter implements RateLimiter {
  /** Always "upstash". */
  readonly kind = "upstash";
  readonly policy: { readonly limit: number; readonly windowMs: number };
  readonly #ratelimit: Ratelimit;
  readonly #timeoutMs: number;

  constructor(options: UpstashRateLimiterOptions) {
    const {
      url,
      token,
      limit,
      windowMs,
      prefix = "streamgate:ratelimit",
      timeoutMs = 500,
      blockedKeys = 10_000,
    } = options;
    if (url === "" || token === "") {
      throw new TypeError("Upstash rate limiter: url and token are required");
    }
    checkPolicy(limit, windowMs);
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
      throw new RangeError(`timeoutMs must be a positive integer, got ${timeoutMs}`);
    }
    if (!Number.isSafeInteger(blockedKeys) || blockedKeys < 1) {
      throw new RangeError(`blockedKeys must be a positive integer, got ${blockedKeys}`);
    }
    this.policy = { limit, windowMs };
    this.#timeoutMs = timeoutMs;
    const redis = createUpstashClient(url, token, timeoutMs, "Upstash rate limiter");
    this.#ratelimit = new Ratelimit({
      redis,
      limiter: Ratelimit.slidingWindow(limit, `${windowMs} ms`),
      prefix,
      ephemeralCache: new BoundedMap(blockedKeys),
      timeout: 0,
      analytics: false,
      enableProtection: false,
    });
  }

  /** Counts one request for `key` in Redis; rejects with `Upstash rate limiter: <reason>`. */
  async limit(key: string): Promise<RateLimitDecision> {
    let answer: Awaited<ReturnType<Ratelimit["limit"]>>;
    try {
      answer = await this.#ratelimit.limit(key);
    } catch (error) {
      throw new Error(`Upstash rate limiter: ${reason(error, this.#timeoutMs)}`, { cause: error });
    }
    return {
      allowed: answer.success,
      limit: answer.limit,
      remaining: answer.remaining,
      resetAt: answer.reset,
    };
  }

  /** Nothing to release: every call is a plain HTTP request. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A Map that drops its oldest entry past `max` entries. */
class BoundedMap<K, V> extends Map<K, V> {
  readonly #max: number;
  constructor(max: number) {
    super();
    this.#max = max;
  }
  override set(key: K, value: V): this {
    if (!this.has(key) && this.size >= this.#max) {
      const oldest = this.keys().next();
      if (oldest.done !== true) this.delete(oldest.value);
    }
    return super.set(key, value);
  }
}

/** A short reason: a timeout named as such, a Redis error without the command the client adds. */
function reason(error: unknown, timeoutMs: number): string {
  if (error instanceof DOMException && error.name === "TimeoutError") {
    return `no answer within ${timeoutMs} ms`;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (/abort|timed? ?out/i.test(message)) return `no answer within ${timeoutMs} ms (${message})`;
  const cut = message.split(", command was:")[0] ?? message;
  return cut.length > MAX_REASON ? `${cut.slice(0, MAX_REASON)}…` : cut;
}
