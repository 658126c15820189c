/**
 * {@link rateLimit}: the HTTP side of the rate limits in `ratelimit.ts`. Mounted per route group
 * by `app.ts`, after `apiKeyAuth()` (`routes/auth/api_key_auth.ts`) where the group needs a key.
 *
 * | Status | `error.code`             | When                                             |
 * | ------ | ------------------------ | ------------------------------------------------ |
 * | 429    | `rate_limited`           | Over the limit; `Retry-After`, `RateLimit-*`     |
 * | 503    | `rate_limit_unavailable` | The limit store is down and fails closed         |
 *
 * @module
 */
import type { Context, MiddlewareHandler, Next } from "hono";
import type { AuthEnv } from "../auth/api_key_auth.ts";
import type { RateLimitGuard } from "./ratelimit.ts";

/** Options of {@link rateLimit}. */
export interface RateLimitOptions {
  /** The limiter with its failure policy. */
  guard: RateLimitGuard;
  /**
   * Without an API key (auth off), requests are limited per client address: the connection's,
   * or with `trustProxy` the last `X-Forwarded-For` entry (the one the trusted proxy added; the
   * others are whatever the client wrote). @default false
   */
  trustProxy?: boolean;
  /** Clock in ms, for `Retry-After` and `RateLimit-Reset` (tests). @default Date.now */
  now?: () => number;
}

/** The client's address: see {@link RateLimitOptions.trustProxy}. */
export function clientAddress(c: Context, trustProxy = false): string | undefined {
  if (trustProxy) {
    const last = c.req.header("x-forwarded-for")?.split(",").at(-1)?.trim();
    if (last) return last;
  }
  // Deno.serve(app.fetch) passes its ServeHandlerInfo as the env.
  const remote = (c.env as { remoteAddr?: Deno.Addr } | undefined)?.remoteAddr;
  return remote !== undefined && "hostname" in remote ? remote.hostname : undefined;
}

/**
 * Counts each request against the limit of its API key (`c.get("apiKey")`, so mount it after
 * `apiKeyAuth()`) or, without one, of the client address. Over the limit: 429 with
 * `Retry-After`. Every counted response carries `RateLimit-Limit`, `RateLimit-Remaining`,
 * `RateLimit-Reset` (seconds) and `RateLimit-Policy` (`<limit>;w=<window seconds>`).
 */
export function rateLimit(options: RateLimitOptions): MiddlewareHandler<AuthEnv> {
  const { guard, trustProxy = false, now = Date.now } = options;
  /** Whole seconds from now until `at` (ms since the epoch), at least 1. */
  const secondsUntil = (at: number) => Math.max(1, Math.ceil((at - now()) / 1000));
  const { limit, windowMs } = guard.limiter.policy;
  const policy = `${limit};w=${Math.max(1, Math.ceil(windowMs / 1000))}`;

  return async function rateLimit(c: Context<AuthEnv>, next: Next) {
    // Unset when the route is public (no apiKeyAuth before this).
    const apiKey = c.get("apiKey") as string | undefined;
    const id = apiKey !== undefined
      ? `key:${apiKey}`
      : `ip:${clientAddress(c, trustProxy) ?? "unknown"}`;
    const verdict = await guard.check(id);
    const requestId = c.get("requestId" as never) as string | undefined;
    if (!verdict.checked) {
      if (verdict.policy === "open") return await next();
      c.header("Retry-After", String(secondsUntil(verdict.retryAt)));
      return c.json({
        error: {
          code: "rate_limit_unavailable",
          message: "Rate limits cannot be checked right now; retry later",
        },
        request_id: requestId,
      }, 503);
    }
    const { decision } = verdict;
    const reset = secondsUntil(decision.resetAt);
    c.header("RateLimit-Limit", String(decision.limit));
    c.header("RateLimit-Remaining", String(decision.remaining));
    c.header("RateLimit-Reset", String(reset));
    c.header("RateLimit-Policy", policy);
    if (!decision.allowed) {
      c.header("Retry-After", String(reset));
      return c.json({
        error: {
          code: "rate_limited",
          message: `More than ${decision.limit} requests in ${windowMs / 1000} s ` +
            `${apiKey === undefined ? "from this address" : "with this API key"}; ` +
            `retry in ${reset} s`,
        },
        request_id: requestId,
      }, 429);
    }
    await next();
  };
}
