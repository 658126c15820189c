/**
 * {@link apiKeyAuth}: API keys, optionally with HMAC-signed bodies, for route groups. Mounted per
 * group by `app.ts` (with `rateLimit()` from `routes/ratelimit/middleware.ts` after it); a group
 * without it is public.
 *
 * Credentials: `Authorization: Bearer <secret>` or `X-API-Key: <secret>`. The secret is compared
 * with every configured key, in time that depends neither on where it differs nor on which key
 * matches (both are SHA-256 digests compared with `timingSafeEqual`, and the loop never stops
 * early). The route then sees the key's NAME as `c.get("apiKey")`; secrets are never logged, never
 * put in a context variable or a response.
 *
 * Signed bodies: see `signature.ts` for the scheme. `t` must be within the tolerance of the
 * server's clock, in either direction. A replay of a signed request within the tolerance is
 * accepted: at-least-once clients resend the very same request after a timeout, and event ids
 * make that resend harmless to the lake.
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
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler, Next } from "hono";
import type { Logger } from "../../shared/logger.ts";
import type { ApiKey } from "./api_keys.ts";
import { readRawBody } from "./raw_body.ts";
import { parseSignature, type SigningKey, verifySignature } from "./signature.ts";

/** Context variables set by {@link apiKeyAuth}. */
export type AuthEnv = { Variables: { apiKey: string } };

/** Whether and how request bodies must be signed. */
export type HmacMode = "off" | "optional" | "required";

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
interface PreparedKey extends SigningKey {
  name: string;
  digest: Uint8Array;
}

/** One middleware's options with their defaults, checked, and its keys prepared. */
interface AuthSettings {
  keys: PreparedKey[];
  hmac: HmacMode;
  toleranceSeconds: number;
  maxBodyBytes: number;
  /** The `WWW-Authenticate` value of a 401. */
  challenge: string;
  logger: Logger | undefined;
  now: () => number;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;
const SIGNATURE_HEADER = "x-signature";

function sha256(text: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(text).digest());
}

/**
 * Requires an API key and, with `hmac`, a body signed with it; sets `c.get("apiKey")` to the
 * key's name.
 */
export function apiKeyAuth(options: ApiKeyAuthOptions): MiddlewareHandler<AuthEnv> {
  const settings = authSettings(options);
  const { hmac } = settings;

  return async function apiKeyAuth(c: Context<AuthEnv>, next: Next) {
    const presented = BEARER.exec(c.req.header("authorization") ?? "")?.[1] ??
      c.req.header("x-api-key")?.trim();
    if (presented === undefined || presented === "") {
      return refuse(
        c,
        settings,
        "missing_credentials",
        "Send an API key as Authorization: Bearer <key> or X-API-Key: <key>",
      );
    }
    const key = match(settings.keys, presented);
    if (key === undefined) {
      return refuse(c, settings, "invalid_credentials", "The API key is not valid");
    }

    const header = c.req.header(SIGNATURE_HEADER);
    if (hmac === "required" || (hmac === "optional" && header !== undefined)) {
      const refused = await checkSignature(c, settings, key, header);
      if (refused !== undefined) return refused;
    }
    c.set("apiKey", key.name);
    await next();
  };
}

/** The options with their defaults; throws on a bad one, before any request is seen. */
function authSettings(options: ApiKeyAuthOptions): AuthSettings {
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
  return {
    keys: prepared,
    hmac,
    toleranceSeconds,
    maxBodyBytes,
    challenge: `Bearer realm="${realm}"`,
    logger,
    now,
  };
}

/** The key whose secret is `presented`, after comparing it with every key. */
function match(keys: readonly PreparedKey[], presented: string): PreparedKey | undefined {
  const digest = sha256(presented);
  let found: PreparedKey | undefined;
  for (const key of keys) {
    const same = timingSafeEqual(digest, key.digest);
    found = same && found === undefined ? key : found;
  }
  return found;
}

/**
 * The refusal, or undefined when `header` signs the body with `key` at a time within the
 * tolerance. On success the request's body is replaced by the bytes read, for the route.
 */
async function checkSignature(
  c: Context<AuthEnv>,
  settings: AuthSettings,
  key: PreparedKey,
  header: string | undefined,
): Promise<Response | undefined> {
  if (header === undefined) {
    return refuse(
      c,
      settings,
      "missing_signature",
      'Sign the body: X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">',
      key.name,
    );
  }
  const signature = parseSignature(header);
  if (signature === undefined) {
    return refuse(
      c,
      settings,
      "malformed_signature",
      "X-Signature must be t=<unix seconds>,v1=<64 hex digits>",
      key.name,
    );
  }
  const { toleranceSeconds } = settings;
  const skew = Math.abs(Math.floor(settings.now() / 1000) - signature.t);
  if (skew > toleranceSeconds) {
    return refuse(
      c,
      settings,
      "signature_expired",
      `The signature's timestamp is ${skew} s from the server's clock; the tolerance is ` +
        `${toleranceSeconds} s`,
      key.name,
    );
  }
  // Throws LimitExceededError (413) before anything is hashed.
  const body = await readRawBody(c.req.raw, settings.maxBodyBytes);
  if (!await verifySignature(key, signature, body)) {
    return refuse(
      c,
      settings,
      "invalid_signature",
      "The signature does not match the body",
      key.name,
    );
  }
  // The route reads the body again, from these bytes.
  if (c.req.raw.body !== null) c.req.raw = new Request(c.req.raw, { body });
  return undefined;
}

/** A 401 with the challenge, logged at debug with the key's name when known (never a secret). */
function refuse(
  c: Context,
  settings: AuthSettings,
  reason: Reason,
  message: string,
  key?: string,
): Response {
  const { challenge, logger } = settings;
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
