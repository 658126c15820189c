/**
 * Signed bodies (Stripe's scheme): `X-Signature: t=<unix seconds>,v1=<hex>` where the hex is
 * HMAC-SHA256 with the key's secret over `<t>.<raw body bytes>` (the bytes as sent, compressed or
 * not; an empty body for a request without one). Several `v1=` entries may be sent (any may
 * match). The signature binds the body and the time, not the method or path; whether `t` is
 * recent enough is the middleware's call (`api_key_auth.ts`).
 *
 * No `hono` here: {@link signBody} is what clients, tools and tests sign with.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";

/** A parsed `X-Signature`: the timestamp and up to {@link MAX_SIGNATURES} candidate MACs. */
export interface Signature {
  t: number;
  v1: Uint8Array[];
}

/** A secret to check signatures with, and its HMAC key once imported (cached across requests). */
export interface SigningKey {
  secret: string;
  hmac?: Promise<CryptoKey>;
}

/** Most `v1=` entries looked at (key rotation needs two). */
const MAX_SIGNATURES = 5;
const HEX_SHA256 = /^[0-9a-f]{64}$/i;
const encoder = new TextEncoder();

/** `t=<int>,v1=<hex>[,v1=<hex>…]` (other schemes ignored), or undefined when malformed. */
export function parseSignature(header: string): Signature | undefined {
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
export async function verifySignature(
  key: SigningKey,
  signature: Signature,
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
