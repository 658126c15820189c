/**
 * The Redis {@link WindowStore}, over Upstash's REST API (`@upstash/redis`; the only module that
 * imports it). A `run()` is one HTTP request to `/pipeline`, whatever the number of ops: one
 * `EVALSHA` of one Lua script (`SCRIPT`), which runs the whole batch inside Redis. The first run of a store
 * also carries `SCRIPT LOAD` in the same request, and a `NOSCRIPT` answer (Redis lost its script
 * cache: a restart, a failover, `SCRIPT FLUSH`) costs one more request, with `SCRIPT LOAD` again.
 *
 * Why a script: sent as plain commands, a zadd is 4 of them and a 500-event batch ~6,500, and
 * most of the time went into carrying each one (JSON, base64, RESP framing, a reply each).
 *
 * The batch is ONE script argument, a JSON array of strings, decoded by `cjson` in the script
 * (much cheaper end to end than one script argument per field), and the script answers ONE JSON
 * string (`cjson.encode`), so the client base64-decodes one string, not one per member. Every
 * field is a string: scores go to Redis as text, as before, never through a Lua number.
 *
 * | op     | fields in the argument               | Redis commands in the script                |
 * | ------ | ------------------------------------ | ------------------------------------------- |
 * | zadd   | `a` (`A`: nx), key, member, score,   | `ZADD key [NX] score member`, then if given |
 * |        | ttlMs, `-(keep+1)` or `""`,          | `ZREMRANGEBYSCORE key -inf (minScore`,      |
 * |        | `(minScore` or `""`                  | `ZREMRANGEBYRANK key 0 -(keep+1)`, and      |
 * |        |                                      | `PEXPIRE key ttlMs`                         |
 * | zcount | `c`, key, `(min`, max                | `ZCOUNT key (min max`                       |
 * | zrange | `r`, key, max, `(min`, limit         | `ZRANGE key max (min BYSCORE REV LIMIT 0    |
 * |        |                                      | limit WITHSCORES`                           |
 * | zlast  | `l`, key, max                        | `ZRANGE key max -inf BYSCORE REV LIMIT 0 1  |
 * |        |                                      | WITHSCORES`                                 |
 * | claim  | `s`, key, value, ttlMs               | `SET key value NX PX ttlMs GET`             |
 *
 * (Infinite bounds are `-inf`/`+inf`.) The reply is `[-1, …]` with, per op in order: nothing for
 * a zadd, the count for a zcount, `n` then `n` member/score pairs lowest first for a zrange, the
 * score or `false` for a zlast, the value held afterwards for a claim. When a command fails, the
 * script stops there and answers `[i, error]` for op `i`: the ops before it stay applied, as in
 * a pipeline (or the memory store), and `run()` rejects naming op `i`.
 *
 * Keys travel in the argument, not in `KEYS`: fine on a single Redis and on Upstash, not on a
 * Redis Cluster (a batch spans many hash slots).
 *
 * Every attempt is bounded by `timeoutMs`, and a failed transport (network error, timeout, a
 * response that is not JSON) is retried up to `retries` times with a short backoff: every op is
 * idempotent, so a retried batch changes nothing twice. An error answered by the server (a wrong
 * token, a Redis error) is not retried. Failures reject with `Upstash window store: <reason>`.
 *
 * @module
 */
import { Redis } from "@upstash/redis";
import {
  checkWindowOp,
  type Scored,
  type WindowOp,
  type WindowResult,
  type WindowStore,
} from "./windows.ts";

/** Options of {@link UpstashWindowStore}. */
export interface UpstashWindowStoreOptions {
  /** REST URL, e.g. `https://eu1-foo-12345.upstash.io`. */
  url: string;
  /** REST token. */
  token: string;
  /** Most time one HTTP attempt may take, in ms. Default 2000. */
  timeoutMs?: number;
  /** Retries after a failed attempt (so `retries + 1` attempts at most). Default 2. */
  retries?: number;
}

/** A pipeline result, with `keepErrors`. */
interface Entry {
  result?: unknown;
  error?: string | undefined;
}

/** Backoff before retry `attempt` (0-based): 50 ms, 100 ms, 200 ms, … up to 500 ms. */
const backoffMs = (attempt: number) => Math.min(50 * 2 ** attempt, 500);

/** Longest server error kept in a message (the client appends the whole request body). */
const MAX_REASON = 300;

/**
 * Runs a batch of window ops (encoded as in the module table, in `ARGV[1]`) and answers the
 * results as one JSON string. `redis.pcall`, so a failed command stops the batch with its op's
 * index instead of aborting the script. Numbers sent to Redis are strings, never Lua numbers.
 */
const SCRIPT = `
local a = cjson.decode(ARGV[1])
local call = redis.pcall
local out, n = {-1}, 1
local i, op, last = 1, 0, #a
while i <= last do
  local code, key = a[i], a[i + 1]
  local r
  if code == 'c' then
    r = call('ZCOUNT', key, a[i + 2], a[i + 3])
    if type(r) == 'table' then return cjson.encode({op, r.err}) end
    n = n + 1
    out[n] = r
    i = i + 4
  elseif code == 'a' or code == 'A' then
    if code == 'A' then
      r = call('ZADD', key, 'NX', a[i + 3], a[i + 2])
    else
      r = call('ZADD', key, a[i + 3], a[i + 2])
    end
    if type(r) == 'table' then return cjson.encode({op, r.err}) end
    local keep, min = a[i + 5], a[i + 6]
    if min ~= '' then
      r = call('ZREMRANGEBYSCORE', key, '-inf', min)
      if type(r) == 'table' then return cjson.encode({op, r.err}) end
    end
    if keep ~= '' then
      r = call('ZREMRANGEBYRANK', key, '0', keep)
      if type(r) == 'table' then return cjson.encode({op, r.err}) end
    end
    r = call('PEXPIRE', key, a[i + 4])
    if type(r) == 'table' then return cjson.encode({op, r.err}) end
    i = i + 7
  elseif code == 'r' then
    r = call('ZRANGE', key, a[i + 2], a[i + 3], 'BYSCORE', 'REV', 'LIMIT', '0', a[i + 4],
      'WITHSCORES')
    if r.err then return cjson.encode({op, r.err}) end
    local m = #r
    n = n + 1
    out[n] = m / 2
    for j = m - 1, 1, -2 do
      out[n + 1] = r[j]
      out[n + 2] = r[j + 1]
      n = n + 2
    end
    i = i + 5
  elseif code == 'l' then
    r = call('ZRANGE', key, a[i + 2], '-inf', 'BYSCORE', 'REV', 'LIMIT', '0', '1', 'WITHSCORES')
    if r.err then return cjson.encode({op, r.err}) end
    n = n + 1
    out[n] = r[2] or false
    i = i + 3
  elseif code == 's' then
    r = call('SET', key, a[i + 2], 'NX', 'PX', a[i + 3], 'GET')
    if type(r) == 'table' then return cjson.encode({op, r.err}) end
    n = n + 1
    out[n] = r or a[i + 2]
    i = i + 4
  else
    return redis.error_reply('ERR unknown window op code ' .. tostring(code))
  end
  op = op + 1
end
return cjson.encode(out)
`;

let scriptSha: Promise<string> | undefined;

/** The SHA-1 of {@link SCRIPT} in hex, as `EVALSHA` wants it. */
function sha(): Promise<string> {
  scriptSha ??= crypto.subtle.digest("SHA-1", new TextEncoder().encode(SCRIPT)).then((hash) =>
    Array.from(new Uint8Array(hash), (byte) => byte.toString(16).padStart(2, "0")).join("")
  );
  return scriptSha;
}

/** A {@link WindowStore} on Redis through the Upstash REST API. */
export class UpstashWindowStore implements WindowStore {
  /** Always "upstash". */
  readonly kind = "upstash";
  readonly #redis: Redis;
  readonly #timeoutMs: number;
  readonly #retries: number;
  /** Whether a run found the script loaded (until a NOSCRIPT says otherwise). */
  #loaded = false;

  constructor(options: UpstashWindowStoreOptions) {
    const { url, token, timeoutMs = 2000, retries = 2 } = options;
    if (url === "" || token === "") {
      throw new TypeError("Upstash window store: url and token are required");
    }
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
      throw new RangeError(`timeoutMs must be a positive integer, got ${timeoutMs}`);
    }
    if (!Number.isSafeInteger(retries) || retries < 0) {
      throw new RangeError(`retries must be a non-negative integer, got ${retries}`);
    }
    this.#timeoutMs = timeoutMs;
    this.#retries = retries;
    this.#redis = createUpstashClient(url, token, timeoutMs);
  }

  /** Runs `ops` as one script in one `/pipeline` request; resolves to one result per op. */
  async run(ops: readonly WindowOp[]): Promise<WindowResult[]> {
    ops.forEach(checkWindowOp);
    if (ops.length === 0) return [];
    const batch = encodeOps(ops);
    const hash = await sha();
    const entry = await this.#attempt(() => this.#evaluate(hash, batch));
    if (entry.error !== undefined) throw storeError(clip(entry.error));
    return decodeResults(ops, entry.result);
  }

  /** Sends PING. */
  async ping(): Promise<void> {
    const pong = await this.#attempt(() => this.#redis.ping());
    if (pong !== "PONG") throw storeError(`unexpected PING reply ${JSON.stringify(pong)}`);
  }

  /** Nothing to release: every request is a plain HTTP request. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * `EVALSHA` in one `/pipeline` request, led by `SCRIPT LOAD` until a run found the script
   * loaded; on NOSCRIPT, once more with `SCRIPT LOAD`. Resolves to the script's entry (an error
   * answered by the server is an entry with `error`, so that it is not retried).
   */
  async #evaluate(hash: string, batch: string): Promise<Entry> {
    for (let load = !this.#loaded;; load = true) {
      const pipeline = this.#redis.pipeline();
      if (load) pipeline.scriptLoad(SCRIPT);
      pipeline.evalsha(hash, [], [batch]);
      const entries: Entry[] = await pipeline.exec({ keepErrors: true });
      if (load) {
        const loaded = entries[0];
        if (loaded?.error !== undefined) return { error: `SCRIPT LOAD failed: ${loaded.error}` };
        if (loaded?.result !== hash) {
          return { error: `SCRIPT LOAD answered ${preview(loaded?.result)}, not ${hash}` };
        }
      }
      const entry = entries[load ? 1 : 0];
      if (entry === undefined) return { error: "no result for the script" };
      if (!load && entry.error?.startsWith("NOSCRIPT") === true) {
        this.#loaded = false;
        continue;
      }
      if (entry.error !== undefined) return { error: `script failed: ${entry.error}` };
      this.#loaded = true;
      return entry;
    }
  }

  /** Runs `send` up to `retries + 1` times while it fails in transport. */
  async #attempt<T>(send: () => Promise<T>): Promise<T> {
    for (let attempt = 0;; attempt++) {
      try {
        return await send();
      } catch (error) {
        if (attempt >= this.#retries || !isTransportError(error)) {
          const tries = attempt + 1;
          throw storeError(
            `${reason(error, this.#timeoutMs)}${tries > 1 ? ` (after ${tries} attempts)` : ""}`,
            error,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt)));
      }
    }
  }
}

/**
 * The Upstash client: raw strings, no auto-pipelining, no retries of its own, a timeout. Shared
 * with the rate limiter (`pipeline/upstash_ratelimit.ts`), so this stays the one module that
 * imports `@upstash/redis`.
 */
export function createUpstashClient(
  url: string,
  token: string,
  timeoutMs: number,
  what = "Upstash window store",
): Redis {
  try {
    return new Redis({
      url,
      token,
      // Members and values stay the raw strings they were written as.
      automaticDeserialization: false,
      enableAutoPipelining: false,
      enableTelemetry: false,
      // One attempt per call: the store retries, each attempt with its own timeout.
      retry: { retries: 0, backoff: () => 0 },
      // A function, so each request gets a fresh signal and an abort throws. (Given a plain
      // AbortSignal, the client turns an abort into a successful "Aborted" result.)
      signal: () => AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    throw new TypeError(`${what}: ${reason(error, timeoutMs)}`, { cause: error });
  }
}

/** `ops` as the script's argument: a JSON array of strings (see the module table). */
function encodeOps(ops: readonly WindowOp[]): string {
  const fields: string[] = [];
  for (const op of ops) {
    const key = text(op.key);
    switch (op.op) {
      case "zadd":
        fields.push(
          op.nx === true ? "A" : "a",
          key,
          text(op.member),
          String(op.score),
          String(op.ttlMs),
          op.keep === undefined ? "" : String(-(op.keep + 1)),
          op.minScore === undefined ? "" : `(${op.minScore}`,
        );
        break;
      case "zcount":
        fields.push("c", key, exclusiveMin(op.min), inclusiveMax(op.max));
        break;
      case "zrange":
        fields.push("r", key, inclusiveMax(op.max), exclusiveMin(op.min), String(op.limit));
        break;
      case "zlast":
        fields.push("l", key, inclusiveMax(op.max));
        break;
      case "claim":
        fields.push("s", key, text(op.value), String(op.ttlMs));
        break;
    }
  }
  return JSON.stringify(fields);
}

/**
 * `s` with any lone surrogate replaced by U+FFFD, as UTF-8 encoding does anyway: JSON.stringify
 * escapes a lone one as `\ud800`, which `cjson` rejects (failing the whole batch).
 */
function text(s: string): string {
  return s.isWellFormed() ? s : s.toWellFormed();
}

/** `(min` for Redis; an infinite bound (never a stored score) as `-inf`/`+inf`. */
function exclusiveMin(min: number): string {
  if (min === -Infinity) return "-inf";
  if (min === Infinity) return "+inf";
  return `(${min}`;
}

/** `max` for Redis; infinities spelled out. */
function inclusiveMax(max: number): string {
  if (max === -Infinity) return "-inf";
  if (max === Infinity) return "+inf";
  return String(max);
}

/** The script's reply (a JSON string, see the module doc) as one result per op. */
function decodeResults(ops: readonly WindowOp[], raw: unknown): WindowResult[] {
  let values: unknown;
  try {
    values = typeof raw === "string" ? JSON.parse(raw) : undefined;
  } catch {
    // Reported below.
  }
  if (!Array.isArray(values)) throw storeError(`unexpected script reply ${preview(raw)}`);
  const status: unknown = values[0];
  if (status !== -1) {
    const op = typeof status === "number" ? ops[status] : undefined;
    if (op === undefined || typeof values[1] !== "string") {
      throw storeError(`unexpected script reply ${preview(raw)}`);
    }
    throw storeError(`op ${status} (${op.op} ${JSON.stringify(op.key)}) failed: ${values[1]}`);
  }
  let at = 1;
  const next = (): unknown => values[at++];
  const results = ops.map((op) => readResult(op, next));
  if (at !== values.length) {
    throw storeError(`script reply has ${values.length - 1} values, read ${at - 1}`);
  }
  return results;
}

/** Reads op's result from the script's reply values, taking them with `next`. */
function readResult(op: WindowOp, next: () => unknown): WindowResult {
  switch (op.op) {
    case "zadd":
      return null;
    case "zcount":
      return readCount(next());
    case "zrange":
      return readScored(next);
    case "zlast": {
      const score = next();
      if (score === false) return null;
      if (typeof score !== "string") throw storeError(`unexpected zlast reply ${preview(score)}`);
      return parseScore(score);
    }
    case "claim": {
      const value = next();
      if (typeof value !== "string") throw storeError(`unexpected claim reply ${preview(value)}`);
      return value;
    }
  }
}

/** A Redis score (`"1.5"`, `"inf"`, `"-inf"`) as a number. */
function parseScore(text: string): number {
  const lower = text.toLowerCase();
  if (lower === "inf" || lower === "+inf") return Infinity;
  if (lower === "-inf") return -Infinity;
  const score = Number(text);
  if (text.trim() === "" || Number.isNaN(score)) {
    throw storeError(`unexpected score ${JSON.stringify(text)}`);
  }
  return score;
}

function readCount(raw: unknown): number {
  if (typeof raw !== "number" || !Number.isSafeInteger(raw) || raw < 0) {
    throw storeError(`unexpected zcount reply ${preview(raw)}`);
  }
  return raw;
}

/** A zrange's `n, member, score, member, score, …` (lowest first) as scored members. */
function readScored(next: () => unknown): Scored[] {
  const n = readCount(next());
  const out: Scored[] = [];
  for (let i = 0; i < n; i++) {
    const member = next();
    const score = next();
    if (typeof member !== "string" || typeof score !== "string") {
      throw storeError(`unexpected zrange reply ${preview([member, score])}`);
    }
    out.push({ member, score: parseScore(score) });
  }
  return out;
}

/** `value` as JSON, clipped to {@link MAX_REASON} characters. */
function preview(value: unknown): string {
  return clip(JSON.stringify(value) ?? String(value));
}

function clip(text: string): string {
  return text.length > MAX_REASON ? `${text.slice(0, MAX_REASON)}…` : text;
}

/** Errors worth another attempt: no answer, a timeout, or an answer that is not the API's JSON. */
function isTransportError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === "UpstashJSONParseError") return true;
  return error.name !== "UpstashError" && error.name !== "UrlError";
}

/** What went wrong, in a line: without the request body the client appends to server errors. */
function reason(error: unknown, timeoutMs: number): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === "TimeoutError") return `no answer within ${timeoutMs} ms`;
  return clip(error.message.replace(/, command was: [\s\S]*$/, ""));
}

function storeError(message: string, cause?: unknown): Error {
  return new Error(`Upstash window store: ${message}`, cause === undefined ? {} : { cause });
}
