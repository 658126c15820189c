/**
 * The Redis {@link WindowStore}, over Upstash's REST API (`@upstash/redis`; the only module that
 * imports it). A `run()` is one HTTP request to `/pipeline`, whatever the number of ops.
 *
 * How ops become commands (results of the helper commands are dropped):
 *
 * | op     | commands                                                                         |
 * | ------ | -------------------------------------------------------------------------------- |
 * | zadd   | `ZADD key [NX] score member`, `ZREMRANGEBYSCORE key -inf (minScore` if minScore, |
 * |        | `ZREMRANGEBYRANK key 0 -(keep+1)` if keep, `PEXPIRE key ttlMs`                   |
 * | zcount | `ZCOUNT key (min max`                                                            |
 * | zrange | `ZRANGE key max (min BYSCORE REV LIMIT 0 limit WITHSCORES`, reversed             |
 * | zlast  | `ZRANGE key max -inf BYSCORE REV LIMIT 0 1 WITHSCORES`                           |
 * | claim  | `SET key value NX PX ttlMs GET` (previous value, or null when it was set)        |
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
  type ClaimOp,
  type Scored,
  type WindowOp,
  type WindowResult,
  type WindowStore,
  type ZAddOp,
  type ZLastOp,
  type ZRangeOp,
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

type Pipeline = ReturnType<Redis["pipeline"]>;

/** Turns the raw result of an op's first command into the op's result. */
type Read = (raw: unknown) => WindowResult;

/** Where one op's commands are in the pipeline: `index` (its result is the op's) to `end`. */
interface Planned {
  op: WindowOp;
  index: number;
  end: number;
  read: Read;
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

/** A {@link WindowStore} on Redis through the Upstash REST API. */
export class UpstashWindowStore implements WindowStore {
  /** Always "upstash". */
  readonly kind = "upstash";
  readonly #redis: Redis;
  readonly #timeoutMs: number;
  readonly #retries: number;

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
    this.#redis = createClient(url, token, timeoutMs);
  }

  /** Runs `ops` as one `/pipeline` request; resolves to one result per op. */
  async run(ops: readonly WindowOp[]): Promise<WindowResult[]> {
    ops.forEach(checkWindowOp);
    if (ops.length === 0) return [];
    const entries = await this.#attempt(() => {
      const pipeline = this.#redis.pipeline();
      const planned = ops.map((op) => plan(pipeline, op));
      return pipeline.exec({ keepErrors: true }).then((results) => ({ planned, results }));
    });
    return entries.planned.map((planned, i) => resultOf(planned, entries.results, i));
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

/** The Upstash client: raw strings, no auto-pipelining, no retries of its own, a timeout. */
function createClient(url: string, token: string, timeoutMs: number): Redis {
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
    throw new TypeError(`Upstash window store: ${reason(error, timeoutMs)}`, { cause: error });
  }
}

/** Adds `op`'s commands to `pipeline`. */
function plan(pipeline: Pipeline, op: WindowOp): Planned {
  const index = pipeline.length();
  const read = addCommands(pipeline, op);
  return { op, index, end: pipeline.length(), read };
}

/** Adds `op`'s commands to `pipeline`; returns how to read the op's result. */
function addCommands(pipeline: Pipeline, op: WindowOp): Read {
  switch (op.op) {
    case "zadd":
      addZAdd(pipeline, op);
      return () => null;
    case "zcount":
      pipeline.zcount(op.key, exclusiveMin(op.min), inclusiveMax(op.max));
      return readCount;
    case "zrange":
      addHighest(pipeline, op, op.limit);
      return (raw) => readScored(raw).reverse();
    case "zlast":
      addHighest(pipeline, op, 1);
      return (raw) => readScored(raw)[0]?.score ?? null;
    case "claim":
      addClaim(pipeline, op);
      return (raw) => readPrevious(raw) ?? op.value;
  }
}

/** Op `i`'s result; throws when any of its commands failed. */
function resultOf(
  { op, index, end, read }: Planned,
  results: readonly Entry[],
  i: number,
): WindowResult {
  for (let j = index; j < end; j++) {
    const entry = results[j];
    if (entry === undefined) throw storeError(`no result for op ${i} (${op.op})`);
    if (entry.error !== undefined) {
      throw storeError(`op ${i} (${op.op} ${JSON.stringify(op.key)}) failed: ${entry.error}`);
    }
  }
  return read(results[index]?.result);
}

function addZAdd(pipeline: Pipeline, op: ZAddOp): void {
  const member = { score: op.score, member: op.member };
  if (op.nx === true) pipeline.zadd(op.key, { nx: true }, member);
  else pipeline.zadd(op.key, member);
  if (op.minScore !== undefined) pipeline.zremrangebyscore(op.key, "-inf", `(${op.minScore}`);
  if (op.keep !== undefined) pipeline.zremrangebyrank(op.key, 0, -(op.keep + 1));
  pipeline.pexpire(op.key, op.ttlMs);
}

/** The `limit` highest members in `(min, max]` (zlast: in `[-inf, max]`), highest first. */
function addHighest(pipeline: Pipeline, op: ZRangeOp | ZLastOp, limit: number): void {
  const min = op.op === "zrange" ? exclusiveMin(op.min) : "-inf";
  pipeline.zrange(op.key, inclusiveMax(op.max), min, {
    byScore: true,
    rev: true,
    offset: 0,
    count: limit,
    withScores: true,
  });
}

function addClaim(pipeline: Pipeline, op: ClaimOp): void {
  pipeline.set(op.key, op.value, { nx: true, px: op.ttlMs, get: true });
}

/** `(min` for Redis; an infinite bound (never a stored score) as `-inf`/`+inf`. */
function exclusiveMin(min: number): `(${number}` | "-inf" | "+inf" {
  if (min === -Infinity) return "-inf";
  if (min === Infinity) return "+inf";
  return `(${min}`;
}

/** `max` for Redis; infinities spelled out (JSON has no Infinity). */
function inclusiveMax(max: number): number | "-inf" | "+inf" {
  if (max === -Infinity) return "-inf";
  if (max === Infinity) return "+inf";
  return max;
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
  const count = typeof raw === "string" ? Number(raw) : raw;
  if (typeof count !== "number" || !Number.isSafeInteger(count)) {
    throw storeError(`unexpected ZCOUNT reply ${JSON.stringify(raw)}`);
  }
  return count;
}

/** `[member, score, member, score, …]` as scored members, in reply order. */
function readScored(raw: unknown): Scored[] {
  if (!Array.isArray(raw) || raw.length % 2 !== 0) {
    throw storeError(`unexpected ZRANGE reply ${JSON.stringify(raw)}`);
  }
  const out: Scored[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const member: unknown = raw[i];
    const score: unknown = raw[i + 1];
    if (typeof member !== "string" || (typeof score !== "string" && typeof score !== "number")) {
      throw storeError(`unexpected ZRANGE reply ${JSON.stringify(raw)}`);
    }
    out.push({ member, score: typeof score === "number" ? score : parseScore(score) });
  }
  return out;
}

/** The reply of `SET … NX GET`: the value held before, or null when there was none. */
function readPrevious(raw: unknown): string | null {
  if (raw === null || typeof raw === "string") return raw;
  throw storeError(`unexpected SET reply ${JSON.stringify(raw)}`);
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
  const text = error.message.replace(/, command was: [\s\S]*$/, "");
  return text.length > MAX_REASON ? `${text.slice(0, MAX_REASON)}…` : text;
}

function storeError(message: string, cause?: unknown): Error {
  return new Error(`Upstash window store: ${message}`, cause === undefined ? {} : { cause });
}
