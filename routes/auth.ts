/**
 * Access control for route groups: {@link apiKeyAuth} (API keys, optionally HMAC-signed bodies)
 * and {@link rateLimit} (a per-key limit, answering 429). Mounted per group by `app.ts`; a group
 * without them is public.
 *
 * Credentials: `Authorization: Bearer <secret>` or `X-API-Key: <secret>`. The secret is compared
 * with every configured key, in time that depends neither on where it differs nor on which key
 * matches (both are SHA-256 digests compared with `timingSafeEqual`, and the loop never stops
 * early). The route then sees the key's NAME as `c.get("apiKey")`; secrets are never logged, never
 * put in a context variable or a response.
 *
 * Signed bodies (Stripe's scheme): `X-Signature: t=<unix seconds>,v1=<hex>` where the hex is
 * HMAC-SHA256 with the key's secret over `<t>.<raw body bytes>` (the bytes as sent, compressed or
 * not; an empty body for a request without one). Several `v1=` entries may be sent (any may
 * match). `t` must be within the tolerance of the server's clock, in either direction. A replay of
 * a signed request within the tolerance is accepted: at-least-once clients resend the very same
 * request after a timeout, and event ids make that resend harmless to the lake. The signature binds
 * the body and the time, not the method or path.
 *
 * | Status | `error.code` / `reason`                   | When                                             |
 * | ------ | ----------------------------------------- | ------------------------------------------------ |
 * | 401    | `unauthorized` / `missing_credentials`    | No API key sent                                  |
 * | 401    | `unauthorized` / `invalid_credentials`    | The key matches no configured key                |
 * | 401    | `unauthorized` / `missing_signature`      | Signing required, no `X-Signature`               |
 * | 401    | `unauthorized` / `malformed_signature`    | `X-Signature` is not `t=<int>,v1=<64 hex>`       |
 * | 401    | `unauthorized` / `signature_expired`      | `t` is further than the tolerance from now       |
 * | 401    | `unauthorized` / `invalid_signature`      | No `v1` matches the body                         |
 * | 413    | `limit_body_bytes`                        | A signed body is over the limit (not hashed)     |
 * | 429    | `rate_limited`                            | Over the limit; `Retry-After`, `RateLimit-*`     |
 * | 503    | `rate_limit_unavailable`                  | The limit store is down and fails closed         |
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler, Next } from "hono";
import { LimitExceededError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { RateLimitGuard } from "./ratelimit/ratelimit.ts";

/** One configured API key. */
export interface ApiKey {
  /** What logs, metrics and rate limits call the key. */
  name: string;
  /** What clients send. */
  secret: string;
}

/** Context variables set by {@link apiKeyAuth}. */
export type AuthEnv = { Variables: { apiKey: string } };

/** Whether and how request bodies must be signed. */
export type HmacMode = "off" | "optional" | "required";

/** The name rule of an API key: safe in logs, metric labels and Redis keys. */
const KEY_NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** Shortest secret accepted. */
export const MIN_SECRET_LENGTH = 16;
/** A secret: visible ASCII without the separators of the API_KEYS list. */
const SECRET = /^[\x21-\x2b\x2d-\x7e]+$/;

/**
 * Parses `name:secret,name:secret` (the `API_KEYS` setting). Error messages name the entry and
 * the key's name, never a secret.
 */
export function parseApiKeys(text: string): ApiKey[] {
  const keys: ApiKey[] = [];
  const entries = text.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "");
  if (entries.length === 0) throw new Error("must list at least one name:secret pair");
  entries.forEach((entry, i) => {
    const at = entry.indexOf(":");
    const name = at < 0 ? "" : entry.slice(0, at).trim();
    const secret = at < 0 ? "" : entry.slice(at + 1).trim();
    const which = `entry ${i + 1}`;
    if (at < 0) throw new Error(`${which} is not name:secret`);
    if (!KEY_NAME.test(name)) {
      throw new Error(`${which} has a name that is not 1-64 characters of A-Z a-z 0-9 . _ -`);
    }
    if (secret.length < MIN_SECRET_LENGTH) {
      throw new Error(`key "${name}" has a secret shorter than ${MIN_SECRET_LENGTH} characters`);
    }
    if (!SECRET.test(secret)) {
      throw new Error(`key "${name}" has a secret with spaces, commas or non-ASCII characters`);
    }
    const same = keys.find((key) => key.name === name || key.secret === secret);
    if (same !== undefined) {
      throw new Error(
        same.name === name
          ? `key "${name}" is listed twice`
          : `keys "${same.name}" and "${name}" have the same secret`,
      );
    }
    keys.push({ name, secret });
  });
  return keys;
}

/** Options of {@link apiKeyAuth}. */
export interface ApiKeyAuthOptions {
  /** The accepted keys (at least one: without keys, do not mount the middleware). */
  keys: readonly ApiKey[];
  /** Whether bodies must carry an `X-Signature`. @default "off" */
  hmac?: HmacMode;
  /** Largest accepted distance of the signature's `t` from now, in seconds. @default 300 */
  toleranceSeconds?: number;
  /**
   * Largest body read to check a signature; a larger one is refused before it is read or hashed.
   * Use the route's own limit. @default 5242880
   */
  maxBodyBytes?: number;
  /** Realm in `WWW-Authenticate`. @default "streamgate" */
  realm?: string;
  /** Told about every refused request (reason, key name when known): never a secret. */
  logger?: Logger;
  /** Clock in ms, for tests. @default Date.now */
  now?: () => number;
}

type Reason =
  | "missing_credentials"
  | "invalid_credentials"
  | "missing_signature"
  | "malformed_signature"
  | "signature_expired"
  | "invalid_signature";

/** A key prepared for checking: the SHA-256 digest of its secret, its HMAC key once needed. */
interface PreparedKey {
  name: string;
  digest: Uint8Array;
  secret: string;
  hmac?: Promise<CryptoKey>;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;
const SIGNATURE_HEADER = "x-signature";
/** Most `v1=` entries looked at (key rotation needs two). */
const MAX_SIGNATURES = 5;
const HEX_SHA256 = /^[0-9a-f]{64}$/i;
const encoder = new TextEncoder();

function sha256(text: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(text).digest());
}

/**
 * Requires an API key and, with `hmac`, a body signed with it; sets `c.get("apiKey")` to the
 * key's name.
 */
export function apiKeyAuth(options: ApiKeyAuthOptions): MiddlewareHandler<AuthEnv> {
  const {
    keys,
    hmac = "off",
    toleranceSeconds = 300,
    maxBodyBytes = 5_242_880,
    realm = "streamgate",
    logger,
    now = Date.now,
  } = options;
  if (keys.length === 0) {
    throw new TypeError("apiKeyAuth() needs at least one key: leave the routes public instead");
  }
  if (hmac !== "off" && hmac !== "optional" && hmac !== "required") {
    throw new TypeError(`hmac must be off, optional or required, got ${JSON.stringify(hmac)}`);
  }
  if (!Number.isSafeInteger(toleranceSeconds) || toleranceSeconds < 1) {
    throw new RangeError(`toleranceSeconds must be a positive integer, got ${toleranceSeconds}`);
  }
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0) {
    throw new RangeError(`maxBodyBytes must be a non-negative integer, got ${maxBodyBytes}`);
  }
  const prepared: PreparedKey[] = keys.map(({ name, secret }) => ({
    name,
    secret,
    digest: sha256(secret),
  }));
  const challenge = `Bearer realm="${realm}"`;

  /** The key whose secret is `presented`, after comparing it with every key. */
  function match(presented: string): PreparedKey | undefined {
    const digest = sha256(presented);
    let found: PreparedKey | undefined;
    for (const key of prepared) {
      const same = timingSafeEqual(digest, key.digest);
      found = same && found === undefined ? key : found;
    }
    return found;
  }

  function refuse(c: Context, reason: Reason, message: string, key?: string): Response {
    const requestId = c.get("requestId" as never) as string | undefined;
    logger?.debug("Request refused", {
      reason,
      method: c.req.method,
      path: c.req.path,
      request_id: requestId,
      ...(key === undefined ? {} : { api_key: key }),
    });
    c.header(
      "WWW-Authenticate",
      reason === "missing_credentials" ? challenge : `${challenge}, error="invalid_token"`,
    );
    return c.json({ error: { code: "unauthorized", reason, message }, request_id: requestId }, 401);
  }

  return async function apiKeyAuth(c: Context<AuthEnv>, next: Next) {
    const presented = BEARER.exec(c.req.header("authorization") ?? "")?.[1] ??
      c.req.header("x-api-key")?.trim();
    if (presented === undefined || presented === "") {
      return refuse(
        c,
        "missing_credentials",
        "Send an API key as Authorization: Bearer <key> or X-API-Key: <key>",
      );
    }
    const key = match(presented);
    if (key === undefined) return refuse(c, "invalid_credentials", "The API key is not valid");

    const header = c.req.header(SIGNATURE_HEADER);
    if (hmac === "required" || (hmac === "optional" && header !== undefined)) {
      if (header === undefined) {
        return refuse(
          c,
          "missing_signature",
          'Sign the body: X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">',
          key.name,
        );
      }
      const signature = parseSignature(header);
      if (signature === undefined) {
        return refuse(
          c,
          "malformed_signature",
          "X-Signature must be t=<unix seconds>,v1=<64 hex digits>",
          key.name,
        );
      }
      const skew = Math.abs(Math.floor(now() / 1000) - signature.t);
      if (skew > toleranceSeconds) {
        return refuse(
          c,
          "signature_expired",
          `The signature's timestamp is ${skew} s from the server's clock; the tolerance is ` +
            `${toleranceSeconds} s`,
          key.name,
        );
      }
      // Throws LimitExceededError (413) before anything is hashed.
      const body = await readRawBody(c.req.raw, maxBodyBytes);
      if (!await verify(key, signature, body)) {
        return refuse(c, "invalid_signature", "The signature does not match the body", key.name);
      }
      // The route reads the body again, from these bytes.
      if (c.req.raw.body !== null) c.req.raw = new Request(c.req.raw, { body });
    }
    c.set("apiKey", key.name);
    await next();
  };
}

/** `t=<int>,v1=<hex>[,v1=<hex>…]` (other schemes ignored), or undefined when malformed. */
export function parseSignature(header: string): { t: number; v1: Uint8Array[] } | undefined {
  let t: number | undefined;
  const v1: Uint8Array[] = [];
  for (const part of header.split(",")) {
    const at = part.indexOf("=");
    if (at < 0) return undefined;
    const name = part.slice(0, at).trim();
    const value = part.slice(at + 1).trim();
    if (name === "t") {
      if (t !== undefined || !/^\d{1,12}$/.test(value)) return undefined;
      t = Number(value);
    } else if (name === "v1") {
      if (!HEX_SHA256.test(value)) return undefined;
      if (v1.length < MAX_SIGNATURES) v1.push(fromHex(value));
    }
  }
  return t === undefined || v1.length === 0 ? undefined : { t, v1 };
}

/** Whether one of `signature.v1` is HMAC-SHA256(secret, "<t>.<body>"), compared in constant time. */
async function verify(
  key: PreparedKey,
  signature: { t: number; v1: Uint8Array[] },
  body: Uint8Array,
): Promise<boolean> {
  key.hmac ??= crypto.subtle.importKey(
    "raw",
    encoder.encode(key.secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const prefix = encoder.encode(`${signature.t}.`);
  const signed = new Uint8Array(prefix.byteLength + body.byteLength);
  signed.set(prefix);
  signed.set(body, prefix.byteLength);
  const expected = new Uint8Array(await crypto.subtle.sign("HMAC", await key.hmac, signed));
  let ok = false;
  for (const candidate of signature.v1) ok = timingSafeEqual(candidate, expected) || ok;
  return ok;
}

/** The hex signature of `body` at `t` with `secret`, as a client computes it (for tests, tools). */
export async function signBody(secret: string, t: number, body: Uint8Array | string) {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const hmacKey = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const prefix = encoder.encode(`${t}.`);
  const signed = new Uint8Array(prefix.byteLength + bytes.byteLength);
  signed.set(prefix);
  signed.set(bytes, prefix.byteLength);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, signed));
  return `t=${t},v1=${Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * The body's bytes as sent (no decompression), refusing a declared or actual size over `maxBytes`
 * before holding more than that (plus one chunk).
 */
async function readRawBody(req: Request, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = () =>
    new LimitExceededError("body_bytes", `Request body is larger than ${maxBytes} bytes`);
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) throw tooLarge();
  if (req.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  // A request stream's chunks are plain ArrayBuffer views (never shared memory).
  if (chunks.length === 1) return chunks[0] as Uint8Array<ArrayBuffer>;
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

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
 * {@link apiKeyAuth}) or, without one, of the client address. Over the limit: 429 with
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
