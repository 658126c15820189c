/**
 * The window store: the few sorted-set and key operations the fraud rules need, sent as one batch
 * (one network round trip for a whole batch of events). Two implementations keep the same contract
 * (`tests/window_store_contract.ts`): {@link MemoryWindowStore} for the embedded default, and the
 * Upstash store in `upstash.ts` for Redis.
 *
 * Every write is idempotent so a re-delivered or retried batch does not change any count: members
 * are event ids (or other deterministic strings), and every written key gets a TTL.
 *
 * @module
 */

/** Adds `member` with `score` to the sorted set `key` and sets the key's TTL to `ttlMs`. */
export interface ZAddOp {
  op: "zadd";
  key: string;
  member: string;
  score: number;
  ttlMs: number;
  /** Keep the existing score when the member is already there (first-seen semantics). */
  nx?: boolean;
  /** After adding, keep only the `keep` highest-scored members. */
  keep?: number;
  /** After adding, remove members scored below this (the window's oldest useful time). */
  minScore?: number;
}

/** Counts members of `key` with `min < score <= max` (exclusive min, inclusive max). */
export interface ZCountOp {
  op: "zcount";
  key: string;
  min: number;
  max: number;
}

/** Members of `key` with `min < score <= max`, lowest score first, with their scores. */
export interface ZRangeOp {
  op: "zrange";
  key: string;
  min: number;
  max: number;
  /** At most this many, the highest-scored ones. */
  limit: number;
}

/** The highest score in `key` that is `<= max`, or null when there is none. */
export interface ZLastOp {
  op: "zlast";
  key: string;
  max: number;
}

/**
 * Sets `key` to `value` with TTL `ttlMs` unless it already holds a value; returns the value it
 * holds afterwards (the new one, or the one that was there). A cooldown/claim primitive.
 */
export interface ClaimOp {
  op: "claim";
  key: string;
  value: string;
  ttlMs: number;
}

export type WindowOp = ZAddOp | ZCountOp | ZRangeOp | ZLastOp | ClaimOp;

/** A member with its score. */
export interface Scored {
  member: string;
  score: number;
}

/** Result of each op, by kind. */
export interface WindowResults {
  zadd: null;
  zcount: number;
  zrange: Scored[];
  zlast: number | null;
  claim: string;
}

export type WindowResult = WindowResults[keyof WindowResults];

/** Runs a batch of ops in order, in one round trip; results come back in the same order. */
export interface WindowStore {
  /** "memory" or "upstash", for logs and /ready. */
  readonly kind: string;
  run(ops: readonly WindowOp[]): Promise<WindowResult[]>;
  /** Cheap reachability check for /ready. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Throws a `RangeError` when `op` cannot be expressed as the Redis commands it stands for (a NaN
 * or infinite score, a TTL that is not a positive whole number of milliseconds, …). Both stores
 * check a whole batch before running any of it, so an invalid batch changes nothing.
 */
export function checkWindowOp(op: WindowOp, index = 0): void {
  const fail = (what: string) => {
    throw new RangeError(`Window op ${index} (${op.op} ${JSON.stringify(op.key)}): ${what}`);
  };
  const whole = (n: number, min: number) => Number.isSafeInteger(n) && n >= min;
  switch (op.op) {
    case "zadd":
      if (!Number.isFinite(op.score)) fail(`score must be finite, got ${op.score}`);
      if (!whole(op.ttlMs, 1)) fail(`ttlMs must be a positive integer, got ${op.ttlMs}`);
      if (op.keep !== undefined && !whole(op.keep, 0)) {
        fail(`keep must be a non-negative integer, got ${op.keep}`);
      }
      if (op.minScore !== undefined && !Number.isFinite(op.minScore)) {
        fail(`minScore must be finite, got ${op.minScore}`);
      }
      return;
    case "zcount":
    case "zrange":
      if (Number.isNaN(op.min) || Number.isNaN(op.max)) fail("min and max must not be NaN");
      if (op.op === "zrange" && !whole(op.limit, 0)) {
        fail(`limit must be a non-negative integer, got ${op.limit}`);
      }
      return;
    case "zlast":
      if (Number.isNaN(op.max)) fail("max must not be NaN");
      return;
    case "claim":
      if (!whole(op.ttlMs, 1)) fail(`ttlMs must be a positive integer, got ${op.ttlMs}`);
      return;
  }
}

/**
 * Orders members the way Redis does (byte-wise on their UTF-8), which is code point order: plain
 * `<` on JS strings compares UTF-16 code units and puts U+E000–U+FFFF after astral characters.
 */
export function compareMembers(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Maps a UTF-16 code unit so that comparing ranks compares code points. */
function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000; // surrogates: astral, highest
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

/** Redis' sorted-set order: by score, then by member. */
function compareScored(score: number, member: string, entry: Scored): number {
  return score !== entry.score ? score - entry.score : compareMembers(member, entry.member);
}

/** One sorted set: the members in Redis order, and each member's score. */
class SortedSet {
  /** Ascending by score, ties by member (byte-wise), exactly like a Redis sorted set. */
  readonly entries: Scored[] = [];
  readonly #scores = new Map<string, number>();

  get size(): number {
    return this.entries.length;
  }

  /** ZADD [NX] score member. */
  add(member: string, score: number, nx: boolean): void {
    const old = this.#scores.get(member);
    if (old !== undefined) {
      if (nx || old === score) return;
      this.entries.splice(this.#indexOf(old, member), 1);
    }
    this.entries.splice(this.#indexOf(score, member), 0, { member, score });
    this.#scores.set(member, score);
  }

  /** ZREMRANGEBYSCORE -inf (minScore: drops members scored below `minScore`. */
  removeBelow(minScore: number): void {
    this.#dropLowest(this.#countBelow(minScore, false));
  }

  /** ZREMRANGEBYRANK 0 -(keep+1): keeps the `keep` highest-ranked members. */
  keepHighest(keep: number): void {
    this.#dropLowest(Math.max(0, this.entries.length - keep));
  }

  /** ZCOUNT (min max. */
  count(min: number, max: number): number {
    return Math.max(0, this.#countBelow(max, true) - this.#countBelow(min, true));
  }

  /** ZRANGE max (min BYSCORE REV LIMIT 0 limit, reversed to ascending. */
  range(min: number, max: number, limit: number): Scored[] {
    const end = this.#countBelow(max, true);
    const start = Math.max(this.#countBelow(min, true), end - limit);
    return start < end ? this.entries.slice(start, end).map((e) => ({ ...e })) : [];
  }

  /** The highest score `<= max`, or null. */
  last(max: number): number | null {
    return this.entries[this.#countBelow(max, true) - 1]?.score ?? null;
  }

  #dropLowest(count: number): void {
    if (count <= 0) return;
    for (const { member } of this.entries.splice(0, count)) this.#scores.delete(member);
  }

  /** How many members score below `bound` (with `orEqual`: at or below it). */
  #countBelow(bound: number, orEqual: boolean): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const score = this.entries[mid]!.score;
      if (orEqual ? score <= bound : score < bound) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Where `(score, member)` is, or would be inserted. */
  #indexOf(score: number, member: string): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareScored(score, member, this.entries[mid]!) > 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** A key's value and when it expires (ms since the epoch, on the store's clock). */
interface Entry {
  value: SortedSet | string;
  expiresAt: number;
}

/** Options of {@link MemoryWindowStore}. */
export interface MemoryWindowStoreOptions {
  /** Most keys held; past it the least recently written keys are evicted. Default 100 000. */
  maxKeys?: number;
  /** Clock for TTLs, in ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** How many expired keys a write may sweep from the oldest end, to keep writes O(1). */
const SWEEP_PER_WRITE = 4;

const WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value";

/**
 * The embedded {@link WindowStore}: Redis sorted-set semantics in process memory, bounded to
 * `maxKeys` keys.
 *
 * - A key expires `ttlMs` after the op that last set its TTL (every zadd, a claim that sets it):
 *   from `now() >= expiresAt` on, it is absent (Redis keeps it 1 ms longer, `now > expiresAt`).
 * - Keys are kept in a `Map` in write order (a zadd re-inserts its key), so when there are more
 *   than `maxKeys`, the least recently written ones are evicted first, in O(1) each. Expired keys
 *   are dropped when read and swept a few per write from the oldest end, once per batch.
 * - A sorted set is an array in Redis order with binary-search insertion: O(log n) lookups and
 *   O(n) inserts, fine for windows of a few thousand members.
 * - An op on a key holding the other kind of value rejects the batch with Redis' WRONGTYPE error;
 *   the ops before it stay applied (as in a Redis pipeline).
 */
export class MemoryWindowStore implements WindowStore {
  /** Always "memory". */
  readonly kind = "memory";
  readonly #keys = new Map<string, Entry>();
  readonly #maxKeys: number;
  readonly #now: () => number;
  #closed = false;

  constructor(options: MemoryWindowStoreOptions = {}) {
    const { maxKeys = 100_000, now = Date.now } = options;
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) {
      throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
    }
    this.#maxKeys = maxKeys;
    this.#now = now;
  }

  /** Keys held, including expired ones not yet swept (never more than `maxKeys`). */
  get size(): number {
    return this.#keys.size;
  }

  /** Like Redis PTTL: ms until `key` expires, or -2 when it does not exist. */
  pttl(key: string): number {
    this.#t = this.#now();
    const entry = this.#live(key);
    return entry === undefined ? -2 : entry.expiresAt - this.#t;
  }

  /** Runs `ops` in order; checks them all first, so an invalid batch changes nothing. */
  run(ops: readonly WindowOp[]): Promise<WindowResult[]> {
    try {
      if (this.#closed) throw new Error("Memory window store is closed");
      ops.forEach(checkWindowOp);
      this.#t = this.#now(); // one clock read per batch, as one Redis script sees one time
      this.#writes = 0;
      const results = ops.map((op) => this.#apply(op));
      this.#sweep(SWEEP_PER_WRITE * this.#writes);
      return Promise.resolve(results);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Resolves at once (unless closed). */
  ping(): Promise<void> {
    return this.#closed
      ? Promise.reject(new Error("Memory window store is closed"))
      : Promise.resolve();
  }

  /** Drops every key; later runs reject. */
  close(): Promise<void> {
    this.#closed = true;
    this.#keys.clear();
    return Promise.resolve();
  }

  /** The clock at the start of the current {@link run}. */
  #t = 0;

  #apply(op: WindowOp): WindowResult {
    switch (op.op) {
      case "zadd":
        return this.#zadd(op);
      case "zcount":
        return this.#zset(op.key)?.count(op.min, op.max) ?? 0;
      case "zrange":
        return this.#zset(op.key)?.range(op.min, op.max, op.limit) ?? [];
      case "zlast":
        return this.#zset(op.key)?.last(op.max) ?? null;
      case "claim":
        return this.#claim(op);
    }
  }

  #zadd(op: ZAddOp): null {
    const set = this.#zset(op.key) ?? new SortedSet();
    set.add(op.member, op.score, op.nx === true);
    if (op.minScore !== undefined) set.removeBelow(op.minScore);
    if (op.keep !== undefined) set.keepHighest(op.keep);
    this.#keys.delete(op.key);
    if (set.size > 0) this.#write(op.key, { value: set, expiresAt: this.#t + op.ttlMs });
    return null;
  }

  #claim(op: ClaimOp): string {
    const held = this.#live(op.key)?.value;
    if (held instanceof SortedSet) throw new Error(WRONGTYPE);
    if (held !== undefined) return held;
    this.#write(op.key, { value: op.value, expiresAt: this.#t + op.ttlMs });
    return op.value;
  }

  /** The sorted set at `key`, or undefined when absent; throws when it holds a string. */
  #zset(key: string): SortedSet | undefined {
    const value = this.#live(key)?.value;
    if (typeof value === "string") throw new Error(WRONGTYPE);
    return value;
  }

  /** The entry at `key` unless it has expired (an expired one is deleted). */
  #live(key: string): Entry | undefined {
    const entry = this.#keys.get(key);
    if (entry === undefined || entry.expiresAt > this.#t) return entry;
    this.#keys.delete(key);
    return undefined;
  }

  /** Writes in the current {@link run}: each may sweep {@link SWEEP_PER_WRITE} expired keys. */
  #writes = 0;

  /**
   * Stores `entry` as the newest key; past `maxKeys`, sweeps expired keys and then evicts from the
   * oldest end. Otherwise the sweep waits for the end of the run: starting a `Map` iterator skips
   * every slot a delete left at its front, and a zadd deletes and re-inserts its key, so a sweep
   * per write cost more than the rest of the write.
   */
  #write(key: string, entry: Entry): void {
    this.#keys.set(key, entry);
    this.#writes++;
    if (this.#keys.size <= this.#maxKeys) return;
    this.#sweep(SWEEP_PER_WRITE);
    while (this.#keys.size > this.#maxKeys) {
      const oldest = this.#keys.keys().next();
      if (oldest.done === true) break;
      this.#keys.delete(oldest.value);
    }
  }

  /** Drops up to `budget` expired keys from the oldest end. */
  #sweep(budget: number): void {
    if (budget <= 0) return;
    const now = this.#t;
    let swept = 0;
    for (const [oldest, { expiresAt }] of this.#keys) {
      if (swept >= budget || expiresAt > now) break;
      this.#keys.delete(oldest);
      swept++;
    }
  }
}
