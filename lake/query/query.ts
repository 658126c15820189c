/**
 * The lake's read side: bronze events, alerts, a user's view and event counts, for the query API
 * (`routes/query.ts`). Every input is validated with zod before anything is listed or queried;
 * values reach DuckDB only as bound parameters, and the files it reads only come from directory
 * listings of the lake (`layout.ts`), never from a request.
 *
 * How a query finds its files:
 * - Bronze is pruned by `dt` (the received date) and `type` before any file is opened.
 *   `received_at` is at most `maxPastDays` after `occurred_at` and at most `maxFutureSeconds` before it (the
 *   gateway's validation bounds), so events that occurred in `[from, to)` live in
 *   `dt ∈ [date(from − maxFutureSeconds), date(to + maxPastDays)]`. Then files are pruned by their
 *   `occurred_at` min/max, read once from each file's footer and remembered (bronze files never
 *   change): opening a file costs ~0.5 ms, which dominates most queries.
 * - A partition directory whose files all remain is handed to DuckDB as one glob of the file
 *   names the lake writes (`<dir>/<pattern>.parquet`), not as a list of every file. DuckDB-wasm
 *   passes the SQL text (and each string parameter) on its 64 KiB C stack: a statement of more
 *   than ~60 KB fails with "memory access out of bounds" and leaves the instance broken, and a
 *   list of ~500 bronze paths is already that long. Lists that would still be too long are split
 *   into several statements whose results are merged here.
 * - Alerts are one small file each: a `dt` partition is read whole once and kept in memory until
 *   its directory's mtime moves; filters run on the kept rows.
 *
 * DuckDB-wasm 1.28 (DuckDB 0.9.1) has no ICU: `date_trunc`/`strftime` do not take TIMESTAMPTZ, so
 * times go through `epoch_us()` and integer arithmetic (hour bucket = `epoch_us(t) // 3600000000`).
 *
 * @module
 */
import { join, resolve } from "node:path";
import { z } from "zod";
import type { LakeEngine, Param } from "../engine/engine.ts";
import { listBronzeFiles, listDates, partitionFile, TABLES } from "../layout.ts";
import { OverloadedError } from "../../shared/errors.ts";
import { EVENT_TYPES, OTHER_TYPE } from "../../shared/schemas.ts";
import { isoToMicros, microsToIso } from "../../shared/time.ts";
import { SEVERITIES, type Severity } from "../../shared/alert.ts";

const HOUR_US = 3_600_000_000;
const DAY_US = 86_400_000_000;
/** Years outside this range are refused: µs since the epoch must stay exact doubles (< 2^53). */
const MIN_US = Date.parse("1970-01-01T00:00:00Z") * 1000;
const MAX_US = Date.parse("2200-01-01T00:00:00Z") * 1000;
/** Longest file list literal in one statement, in bytes (DuckDB-wasm's stack is 64 KiB). */
const LIST_BUDGET = 12_000;
/** A statement longer than this is never sent: it would corrupt the DuckDB instance. */
const MAX_SQL_BYTES = 32_000;
/** Bronze files whose footer statistics one query may read (the rest are read without pruning). */
const STATS_PER_QUERY = 4000;
/** Alerts kept in memory (a few hundred bytes to a few KB each). */
const MAX_CACHED_ALERTS = 100_000;
/** Bronze file ranges kept in memory (~150 bytes each). */
const MAX_CACHED_RANGES = 500_000;

/** The bronze file names the writer produces (`<topic>+<partition>+<first>+<last>.parquet`). */
const BRONZE_GLOB = "*+*+????????????????????+????????????????????.parquet";
/** Alert files: `<uuid>.parquet`. */
const ALERT_GLOB = "????????-????-????-????-????????????.parquet";
const ALERT_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.parquet$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
/**
 * DuckDB-wasm on Node resolves every path it reads, glob or not, through fast-glob: a lake under a
 * path with pattern characters cannot be read (`/data/lake(1)` finds no files).
 */
const GLOB_CHARS = /[*?[\](){}!\\]/;

/** Event types a query may filter on: the known types and `other`. */
export const QUERY_TYPES = [...EVENT_TYPES, OTHER_TYPE] as const;
const PARTITION_TYPES = new Set<string>(QUERY_TYPES);
/** Alert severities, lowest first. */

/** A query the API refuses; the route answers 400 with the issues. */
export class InvalidQueryError extends Error {
  readonly issues: { path: string; message: string }[];
  constructor(issues: { path: string; message: string }[]) {
    super(`Invalid query: ${issues.map((i) => `${i.path || "query"}: ${i.message}`).join("; ")}`);
    this.name = "InvalidQueryError";
    this.issues = issues;
  }
}

// ---------------------------------------------------------------------------------------------
// Input schemas. Strings only come from HTTP; numbers are accepted too for callers in code.

/** A string safe to bind: well-formed UTF-16, no control characters (DuckDB-wasm cuts at NUL). */
function text(max: number) {
  return z.string().min(1).max(max).refine((s) => s.isWellFormed(), "must be valid Unicode")
    .refine((s) => !hasControl(s), "must not contain control characters");
}
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
const userId = text(128);
const instant = z.iso.datetime({
  offset: true,
  message: "must be an ISO-8601 date-time with a time zone, e.g. 2026-03-10T12:00:00Z",
}).transform((s, ctx) => {
  const us = isoToMicros(s);
  if (!Number.isFinite(us) || us < MIN_US || us >= MAX_US) {
    ctx.addIssue({ code: "custom", message: "must be between 1970 and 2199" });
    return z.NEVER;
  }
  return us;
});
function limit(max: number) {
  return z.union([
    z.number(),
    z.string().regex(/^[0-9]{1,9}$/, "must be a whole number").transform(Number),
  ]).pipe(z.number().int("must be a whole number").min(1).max(max));
}

/**
 * The query API's input schemas, with `limit` capped at `maxLimit`: the routes validate with them
 * and the OpenAPI document (`routes/openapi.ts`) describes its parameters from them.
 */
export function querySchemas(maxLimit: number) {
  return {
    events: z.strictObject({
      user_id: userId.optional(),
      type: z.enum(QUERY_TYPES, { message: 'must be a known event type or "other"' }).optional(),
      from: instant.optional(),
      to: instant.optional(),
      limit: limit(maxLimit).optional(),
      cursor: z.string().max(1024).optional(),
    }),
    alerts: z.strictObject({
      user_id: userId.optional(),
      severity: z.enum(SEVERITIES, { message: `must be one of ${SEVERITIES.join(", ")}` })
        .optional(),
      rule: z.string().regex(/^[a-z_]{1,64}$/, "must be a rule name (a-z and _)").optional(),
      from: instant.optional(),
      to: instant.optional(),
      limit: limit(maxLimit).optional(),
    }),
    stats: z.strictObject({ from: instant.optional(), to: instant.optional() }),
    userId,
  };
}

/** Query parameters of {@link LakeQuery.events}, as given (strings from HTTP, or numbers). */
export type EventsInput = z.input<ReturnType<typeof querySchemas>["events"]>;
/** Query parameters of {@link LakeQuery.alerts}. */
export type AlertsInput = z.input<ReturnType<typeof querySchemas>["alerts"]>;
/** Query parameters of {@link LakeQuery.stats}. */
export type StatsInput = z.input<ReturnType<typeof querySchemas>["stats"]>;

function parse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  throw new InvalidQueryError(r.error.issues.map((i) => ({
    path: i.code === "unrecognized_keys"
      ? i.keys.map((k) => k.slice(0, 64)).join(",")
      : i.path.map(String).join("."),
    message: i.code === "unrecognized_keys" ? "unknown query parameter" : i.message,
  })));
}

// ---------------------------------------------------------------------------------------------
// Output shapes.

/** One bronze event. */
export interface EventOut {
  event_id: string;
  /** The partition: a known type or `other`. */
  type: string;
  /** The type as sent (differs from `type` only for `other`). */
  event_type: string;
  user_id: string;
  occurred_at: string;
  received_at: string;
  source: string;
  payload: unknown;
  log_topic: string;
  log_partition: number;
  log_offset: number;
}

/** One alert. */
export interface AlertOut {
  alert_id: string;
  user_id: string;
  raised_at: string;
  occurred_at: string;
  trigger_event_id: string;
  trigger_type: string;
  rule_score: number;
  fraud_score: number;
  /** Highest severity among the rules. */
  severity: string;
  /** Names of the rules that fired. */
  rules: string[];
  /** `[{name, severity, reason}]` as the detector gave them. */
  reasons: unknown;
  llm_status: string;
  llm_score: number | null;
  llm_verdict: string | null;
  llm_rationale: string | null;
  window_summary: unknown;
  event_ids: unknown;
  degraded: string | null;
}

/** `GET /events`. */
export interface EventsPage {
  events: EventOut[];
  /** Pass as `cursor` for the rows after the last one; `null` when there are none. */
  next_cursor: string | null;
}

/** `GET /stats`. */
export interface StatsOut {
  from: string;
  to: string;
  by_type: Record<string, number>;
  /** Every hour bucket in the range (UTC), zeros included, oldest first. */
  by_hour: { hour: string; count: number }[];
  total: number;
}

/** `GET /users/:id`. */
export interface UserOut {
  user_id: string;
  recent_events: EventOut[];
  alerts: AlertOut[];
  features: Record<string, unknown>[];
}

/** Options of {@link LakeQuery}. */
export interface LakeQueryOptions {
  /** Largest `limit`. @default 1000 */
  maxLimit?: number;
  /** Longest `[from, to)` range, in days. @default 31 */
  maxRangeDays?: number;
  /** The clock, in ms. @default Date.now */
  now?: () => number;
  /** The gateway's `EVENT_MAX_PAST_DAYS`: longest delay from occurring to reception. @default 30 */
  maxPastDays?: number;
  /** The gateway's `EVENT_MAX_FUTURE_SECONDS`: occurred_at ahead of reception. @default 3600 */
  maxFutureSeconds?: number;
  /** Queries in flight (or queued for the engine) beyond which new ones get a 503. @default 32 */
  maxPending?: number;
  /** Longest file list in one statement, in bytes; longer lists are split. @default 12000 */
  listBudget?: number;
}

type Row = Record<string, unknown>;
type CachedAlert = { us: number; alert: AlertOut };

/** Read queries over the lake. Give it a {@link LakeEngine} of its own: reads then never wait. */
export class LakeQuery {
  readonly #engine: LakeEngine;
  readonly #lakeDir: string;
  readonly #maxLimit: number;
  readonly #maxRangeUs: number;
  readonly #maxPastUs: number;
  readonly #maxFutureUs: number;
  readonly #maxPending: number;
  readonly #now: () => number;
  readonly #schemas: ReturnType<typeof querySchemas>;
  readonly #listBudget: number;
  /** `occurred_at` min/max (µs) of bronze files, by path; see {@link #fileRanges}. */
  readonly #ranges = new Map<string, { min: number; max: number }>();
  /** Alert partitions read whole, by `dt`, with the directory mtime they were read at. */
  readonly #alertDays = new Map<string, { mtimeMs: number; rows: CachedAlert[] }>();
  #pending = 0;

  constructor(engine: LakeEngine, lakeDir: string, options: LakeQueryOptions = {}) {
    const int = (name: string, v: number, min: number, max: number) => {
      if (!Number.isSafeInteger(v) || v < min || v > max) {
        throw new RangeError(`LakeQuery option ${name} must be an integer in [${min}, ${max}]`);
      }
      return v;
    };
    this.#engine = engine;
    this.#lakeDir = resolve(lakeDir);
    if (GLOB_CHARS.test(this.#lakeDir)) {
      throw new Error(`DuckDB-wasm reads paths as globs: cannot query a lake under ${lakeDir}`);
    }
    this.#maxLimit = int("maxLimit", options.maxLimit ?? 1000, 1, 100_000);
    this.#maxRangeUs = int("maxRangeDays", options.maxRangeDays ?? 31, 1, 3660) * DAY_US;
    this.#maxPastUs = int("maxPastDays", options.maxPastDays ?? 30, 0, 3660) * DAY_US;
    this.#maxFutureUs = int("maxFutureSeconds", options.maxFutureSeconds ?? 3600, 0, 86_400 * 366) *
      1_000_000;
    this.#maxPending = int("maxPending", options.maxPending ?? 32, 1, 100_000);
    this.#now = options.now ?? Date.now;
    this.#schemas = querySchemas(this.#maxLimit);
    this.#listBudget = int("listBudget", options.listBudget ?? LIST_BUDGET, 256, LIST_BUDGET);
  }

  /**
   * Bronze events with `occurred_at` in `[from, to)` (default: the last 24 h), ordered by
   * `(occurred_at, event_id)` and then by log position, a page at a time.
   */
  async events(input: EventsInput): Promise<EventsPage> {
    const q = parse(this.#schemas.events, input);
    const { fromUs, toUs } = this.#range(q.from, q.to, 1);
    const cursor = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    const limit = q.limit ?? Math.min(100, this.#maxLimit);
    return await this.#guard(async () => {
      const lower = cursor ? Math.max(fromUs, cursor.o) : fromUs;
      if (lower >= toUs) return { events: [], next_cursor: null };
      const sources = await this.#bronzeSources(lower, toUs, q.type);
      if (sources.length === 0) return { events: [], next_cursor: null };
      const where = [
        "occurred_at >= make_timestamp(CAST(? AS BIGINT))",
        "occurred_at < make_timestamp(CAST(? AS BIGINT))",
      ];
      const params: Param[] = [lower, toUs];
      if (q.user_id !== undefined) (where.push("user_id = ?"), params.push(q.user_id));
      if (cursor) {
        where.push(AFTER_CURSOR);
        params.push(
          cursor.o,
          cursor.o,
          cursor.id,
          cursor.id,
          cursor.topic,
          cursor.topic,
          cursor.partition,
          cursor.partition,
          cursor.offset,
        );
      }
      const rows = await this.#select(
        sources,
        (files) =>
          `SELECT ${EVENT_COLUMNS} FROM read_parquet(${files}, hive_partitioning = true)
            WHERE ${where.join(" AND ")}
            ORDER BY occurred_at, event_id, log_topic, log_partition, log_offset
            LIMIT CAST(? AS BIGINT)`,
        [...params, limit + 1],
      );
      rows.sort(compareEvents);
      const page = rows.slice(0, limit).map(toEvent);
      const last = rows.length > limit ? rows[limit - 1] : undefined;
      return { events: page, next_cursor: last ? encodeCursor(last) : null };
    });
  }

  /** Alerts with `occurred_at` in `[from, to)` (default: the last 7 days), newest first. */
  async alerts(input: AlertsInput): Promise<{ alerts: AlertOut[] }> {
    const q = parse(this.#schemas.alerts, input);
    const { fromUs, toUs } = this.#range(q.from, q.to, 7);
    const limit = q.limit ?? Math.min(100, this.#maxLimit);
    return await this.#guard(async () => ({
      alerts: await this.#alerts(fromUs, toUs, {
        ...(q.user_id !== undefined ? { userId: q.user_id } : {}),
        ...(q.severity ? { severity: q.severity } : {}),
        ...(q.rule ? { rule: q.rule } : {}),
        limit,
      }),
    }));
  }

  /**
   * One user: the last 50 events of the last 7 days (bronze), the last 20 alerts of the last
   * `maxRangeDays` days, and the user's gold features of the last 30 days (newest first).
   */
  async user(id: string): Promise<UserOut> {
    const userId = parse(this.#schemas.userId, id);
    const nowUs = this.#nowUs();
    return await this.#guard(async () => {
      const fromUs = nowUs - 7 * DAY_US;
      const sources = await this.#bronzeSources(fromUs, undefined, undefined);
      const events = sources.length === 0 ? [] : await this.#select(
        sources,
        (files) =>
          `SELECT ${EVENT_COLUMNS} FROM read_parquet(${files}, hive_partitioning = true)
            WHERE occurred_at >= make_timestamp(CAST(? AS BIGINT)) AND user_id = ?
            ORDER BY occurred_at DESC, event_id DESC, log_topic DESC, log_partition DESC,
                     log_offset DESC
            LIMIT 50`,
        [fromUs, userId],
      );
      events.sort((a, b) => compareEvents(b, a));
      const alerts = await this.#alerts(nowUs - this.#maxRangeUs, MAX_US, { userId, limit: 20 });
      const features = await this.#features(userId, nowUs);
      return {
        user_id: userId,
        recent_events: events.slice(0, 50).map(toEvent),
        alerts,
        features,
      };
    });
  }

  /** Bronze event counts per type and per UTC hour of `occurred_at` in `[from, to)` (default 24 h). */
  async stats(input: StatsInput): Promise<StatsOut> {
    const q = parse(this.#schemas.stats, input);
    const { fromUs, toUs } = this.#range(q.from, q.to, 1);
    return await this.#guard(async () => {
      const sources = await this.#bronzeSources(fromUs, toUs, undefined);
      const rows = sources.length === 0 ? [] : await this.#select(
        sources,
        (files) =>
          `SELECT type, epoch_us(occurred_at) // ${HOUR_US} AS h, count(*) AS n
             FROM read_parquet(${files}, hive_partitioning = true)
            WHERE occurred_at >= make_timestamp(CAST(? AS BIGINT))
              AND occurred_at < make_timestamp(CAST(? AS BIGINT))
            GROUP BY ALL`,
        [fromUs, toUs],
      );
      const byType = new Map<string, number>();
      const byHour = new Map<number, number>();
      let total = 0;
      for (const r of rows) {
        const n = toNumber(r.n);
        const type = String(r.type);
        const h = toNumber(r.h);
        byType.set(type, (byType.get(type) ?? 0) + n);
        byHour.set(h, (byHour.get(h) ?? 0) + n);
        total += n;
      }
      const by_hour: StatsOut["by_hour"] = [];
      for (let h = Math.floor(fromUs / HOUR_US); h * HOUR_US < toUs; h++) {
        by_hour.push({ hour: microsToIso(h * HOUR_US), count: byHour.get(h) ?? 0 });
      }
      return {
        from: microsToIso(fromUs),
        to: microsToIso(toUs),
        by_type: Object.fromEntries([...byType].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)),
        by_hour,
        total,
      };
    });
  }

  // -------------------------------------------------------------------------------------------

  #nowUs(): number {
    return Math.floor(this.#now()) * 1000;
  }

  /** `[from, to)` in µs: `to` defaults to now, `from` to `defaultDays` before `to`; capped. */
  #range(from: number | undefined, to: number | undefined, defaultDays: number) {
    const toUs = to ?? this.#nowUs();
    const fromUs = from ?? toUs - Math.min(defaultDays * DAY_US, this.#maxRangeUs);
    if (fromUs >= toUs) {
      throw new InvalidQueryError([{ path: "from", message: "must be before to" }]);
    }
    if (toUs - fromUs > this.#maxRangeUs) {
      throw new InvalidQueryError([{
        path: "to",
        message: `the range from..to may span at most ${this.#maxRangeUs / DAY_US} days`,
      }]);
    }
    return { fromUs, toUs };
  }

  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#pending >= this.#maxPending) {
      throw new OverloadedError("Too many lake queries in flight", 1);
    }
    this.#pending++;
    try {
      return await fn();
    } finally {
      this.#pending--;
    }
  }

  /**
   * What DuckDB reads for bronze events that occurred in `[fromUs, toUs)` (no upper bound when
   * `toUs` is undefined). Partitions are pruned by `dt` and type from the listing, then files by
   * their `occurred_at` range (cached footer statistics). A directory whose files all remain is
   * read through one glob of bronze file names (one per `dt` when every type remains); the others
   * as the listed files.
   */
  async #bronzeSources(fromUs: number, toUs: number | undefined, type: string | undefined) {
    const from = dateOf(Math.max(MIN_US, fromUs - this.#maxFutureUs));
    const to = toUs === undefined
      ? undefined
      : dateOf(Math.min(MAX_US - 1, toUs + this.#maxPastUs));
    const files = await listBronzeFiles(this.#lakeDir, {
      from,
      ...(to ? { to } : {}),
      ...(type ? { types: [type] } : {}),
    });
    const ranges = await this.#fileRanges(files.map((f) => f.path));
    const overlaps = (path: string) => {
      const r = ranges.get(path);
      return !r || (r.max >= fromUs && (toUs === undefined || r.min < toUs));
    };
    // dt → type → [kept paths, whether every listed file was kept]
    const dirs = new Map<string, Map<string, { kept: string[]; all: boolean }>>();
    for (const f of files) {
      const byType = dirs.get(f.dt) ?? new Map<string, { kept: string[]; all: boolean }>();
      dirs.set(f.dt, byType);
      const d = byType.get(f.type) ?? { kept: [], all: true };
      byType.set(f.type, d);
      if (overlaps(f.path)) d.kept.push(f.path);
      else d.all = false;
    }
    const out: string[] = [];
    for (const [dt, byType] of dirs) {
      const dtDir = join(this.#lakeDir, TABLES.bronze, `dt=${dt}`);
      const whole = [...byType.values()].every((d) => d.all);
      if (!type && whole && await onlyTypeDirs(dtDir)) {
        out.push(join(dtDir, "type=*", BRONZE_GLOB));
        continue;
      }
      for (const [t, d] of byType) {
        if (d.all) out.push(join(dtDir, `type=${t}`, BRONZE_GLOB));
        else out.push(...d.kept);
      }
    }
    return out;
  }

  /**
   * The `occurred_at` range of each bronze file, from its footer statistics. Bronze files never
   * change once renamed into place (a rewritten name holds the same rows), so ranges are cached;
   * at most `STATS_PER_QUERY` unknown files are read per query, the others count as overlapping.
   */
  async #fileRanges(paths: string[]): Promise<Map<string, { min: number; max: number }>> {
    const missing = paths.filter((p) => !this.#ranges.has(p)).slice(0, STATS_PER_QUERY);
    for (const chunkPaths of splitList(missing, this.#listBudget)) {
      const chunk = sqlList(chunkPaths);
      const rows = await this.#query<{ file_name: string; lo: unknown; hi: unknown }>(
        `SELECT file_name, stats_min AS lo, stats_max AS hi FROM parquet_metadata(${chunk})
          WHERE path_in_schema = 'occurred_at'`,
        [],
      );
      const found = new Map<string, { min: number; max: number }>();
      const unreadable = new Set<string>();
      for (const r of rows) {
        const lo = statsMicros(r.lo), hi = statsMicros(r.hi);
        if (lo === undefined || hi === undefined) unreadable.add(r.file_name);
        const cur = found.get(r.file_name);
        found.set(r.file_name, {
          min: Math.min(cur?.min ?? Infinity, lo ?? -Infinity),
          max: Math.max(cur?.max ?? -Infinity, hi ?? Infinity),
        });
      }
      // A file without row groups has no rows to find; one without statistics is read every time.
      for (const path of chunkPaths) {
        if (unreadable.has(path)) continue;
        this.#ranges.set(path, found.get(path) ?? { min: Infinity, max: -Infinity });
      }
    }
    while (this.#ranges.size > MAX_CACHED_RANGES) {
      this.#ranges.delete(this.#ranges.keys().next().value!);
    }
    const out = new Map<string, { min: number; max: number }>();
    for (const p of paths) {
      const r = this.#ranges.get(p);
      if (r) out.set(p, r);
    }
    return out;
  }

  /**
   * Alerts that occurred in `[fromUs, toUs)`, filtered, newest first. The table is one small file
   * per alert, so opening the files is what costs: each `dt` partition is read whole once and kept
   * in memory until its directory changes (new or rewritten alert files are renamed into it, which
   * moves its mtime). A partition modified in the last seconds is not kept (mtimes are in ms).
   */
  async #alerts(
    fromUs: number,
    toUs: number,
    f: { userId?: string; severity?: Severity; rule?: string; limit: number },
  ): Promise<AlertOut[]> {
    const dates = await listDates(this.#lakeDir, TABLES.alerts, {
      from: dateOf(Math.max(MIN_US, fromUs)),
      to: dateOf(Math.min(MAX_US, toUs) - 1),
    });
    const found: CachedAlert[] = [];
    const load = new Map<string, number>();
    const sources: string[] = [];
    for (const dt of dates) {
      const dir = join(this.#lakeDir, TABLES.alerts, `dt=${dt}`);
      const mtimeMs = await mtime(dir);
      if (mtimeMs === undefined) continue;
      const cached = this.#alertDays.get(dt);
      if (cached && cached.mtimeMs === mtimeMs) {
        found.push(...cached.rows);
        continue;
      }
      load.set(dt, mtimeMs);
      const names = await fileNames(dir, ALERT_NAME);
      if (names.length === 0) continue;
      sources.push(join(dir, ALERT_GLOB));
    }
    if (load.size > 0) {
      const readAt = Date.now();
      const rows = sources.length === 0 ? [] : await this.#select(
        sources,
        (files) =>
          `SELECT dt, alert_id, user_id, epoch_us(raised_at) AS raised_us,
                  epoch_us(occurred_at) AS occurred_us, trigger_event_id, trigger_type,
                  rule_score, fraud_score, rules, severity, reasons, llm_status, llm_score,
                  llm_verdict, llm_rationale, window_summary, event_ids, degraded
             FROM read_parquet(${files}, union_by_name = true, hive_partitioning = true,
                               hive_types = {'dt': VARCHAR})`,
        [],
      );
      const byDt = new Map<string, CachedAlert[]>([...load.keys()].map((dt) => [dt, []]));
      for (const r of rows) {
        const list = byDt.get(String(r.dt));
        if (list) list.push({ us: toNumber(r.occurred_us), alert: toAlert(r) });
      }
      for (const [dt, list] of byDt) {
        found.push(...list);
        const mtimeMs = load.get(dt)!;
        if (readAt - mtimeMs < 2000) continue;
        this.#alertDays.delete(dt);
        this.#alertDays.set(dt, { mtimeMs, rows: list });
      }
      let cached = 0;
      for (const d of this.#alertDays.values()) cached += d.rows.length;
      for (const [dt, d] of this.#alertDays) {
        if (cached <= MAX_CACHED_ALERTS) break;
        this.#alertDays.delete(dt);
        cached -= d.rows.length;
      }
    }
    const minRank = f.severity ? SEVERITIES.indexOf(f.severity) : -1;
    return found
      .filter(({ us, alert: a }) =>
        us >= fromUs && us < toUs &&
        (f.userId === undefined || a.user_id === f.userId) &&
        (minRank < 0 || SEVERITIES.indexOf(a.severity as Severity) >= minRank) &&
        (f.rule === undefined || a.rules.includes(f.rule))
      )
      .sort((a, b) => b.us - a.us || cmp(b.alert.alert_id, a.alert.alert_id))
      .slice(0, f.limit)
      .map((x) => structuredClone(x.alert));
  }

  /** The user's rows of gold/user_daily_features for the last 30 days, newest first. */
  async #features(userId: string, nowUs: number): Promise<Record<string, unknown>[]> {
    const table = TABLES.userDailyFeatures;
    const dates = await listDates(this.#lakeDir, table, {
      from: dateOf(nowUs - 30 * DAY_US),
      to: dateOf(nowUs),
    });
    const files: string[] = [];
    for (const dt of dates) {
      const path = partitionFile(this.#lakeDir, table, dt);
      if (await isFile(path)) files.push(path);
    }
    if (files.length === 0) return [];
    // The gold job decides the columns: read the schema, then cast what JSON cannot carry.
    const columns: { column_name: string; column_type: string }[] = [];
    for (const chunk of chunkList(files, this.#listBudget)) {
      for (
        const c of await this.#query<{ column_name: string; column_type: string }>(
          `DESCRIBE SELECT * FROM read_parquet(${chunk}, union_by_name = true)`,
          [],
        )
      ) if (!columns.some((x) => x.column_name === c.column_name)) columns.push(c);
    }
    if (!columns.some((c) => c.column_name === "user_id")) return [];
    const hasDt = columns.some((c) => c.column_name === "dt");
    const select = columns.map((c) => selectAs(c.column_name, c.column_type));
    // dt lives in the path: hive partitioning reads it (as text) unless the files have it.
    if (!hasDt) select.push("dt");
    const hive = hasDt ? "" : ", hive_partitioning = true, hive_types = {'dt': VARCHAR}";
    const rows: Row[] = [];
    for (const chunk of chunkList(files, this.#listBudget)) {
      rows.push(
        ...await this.#query(
          `SELECT ${select.join(", ")}
             FROM read_parquet(${chunk}, union_by_name = true${hive})
            WHERE user_id = ?`,
          [userId],
        ),
      );
    }
    const out = rows.map((r) => {
      const o: Record<string, unknown> = {};
      for (const c of columns) o[c.column_name] = toJson(r[c.column_name], c.column_type);
      if (!hasDt) o.dt = r.dt;
      return o;
    });
    return out.sort((a, b) => cmp(String(b.dt), String(a.dt)));
  }

  /** Runs one statement per chunk of `sources` and concatenates the rows. */
  async #select(sources: string[], sql: (files: string) => string, params: Param[]) {
    const rows: Row[] = [];
    for (const chunk of chunkList(sources, this.#listBudget)) {
      rows.push(...await this.#query(sql(chunk), params));
    }
    return rows;
  }

  async #query<T = Row>(sql: string, params: Param[]): Promise<T[]> {
    const bytes = new TextEncoder().encode(sql).length +
      params.reduce<number>((n, p) => n + (typeof p === "string" ? p.length * 3 : 32), 0);
    if (bytes > MAX_SQL_BYTES) throw new Error(`Lake query too long (${bytes} bytes)`);
    return await this.#engine.query<T>(sql, params);
  }
}

// -----------------------------------------------------------------------------------------------

const EVENT_COLUMNS = `event_id, type, event_type, user_id, epoch_us(occurred_at) AS occurred_us,
  epoch_us(received_at) AS received_us, source, payload, log_topic, log_partition, log_offset`;

/** Rows strictly after the cursor in (occurred_at, event_id, log_topic, log_partition, offset). */
const AFTER_CURSOR = `(occurred_at > make_timestamp(CAST(? AS BIGINT))
  OR (occurred_at = make_timestamp(CAST(? AS BIGINT)) AND (event_id > ?
  OR (event_id = ? AND (log_topic > ?
  OR (log_topic = ? AND (log_partition > CAST(? AS INTEGER)
  OR (log_partition = CAST(? AS INTEGER) AND log_offset > CAST(? AS BIGINT)))))))))`;

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareEvents(a: Row, b: Row): number {
  return toNumber(a.occurred_us) - toNumber(b.occurred_us) ||
    cmp(String(a.event_id), String(b.event_id)) ||
    cmp(String(a.log_topic), String(b.log_topic)) ||
    toNumber(a.log_partition) - toNumber(b.log_partition) ||
    toNumber(a.log_offset) - toNumber(b.log_offset);
}

/** µs of a Parquet statistics value of a UTC timestamp (`2026-03-10 12:00:00.123456`). */
function statsMicros(v: unknown): number | undefined {
  if (typeof v !== "string" || !/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?$/.test(v)) {
    return undefined;
  }
  const us = isoToMicros(`${v.replace(" ", "T")}Z`);
  return Number.isFinite(us) ? us : undefined;
}

function dateOf(us: number): string {
  return new Date(Math.floor(us / 1000)).toISOString().slice(0, 10);
}

/** A BIGINT as a number (exact below 2^53; the lake's counts, offsets and µs times are). */
function toNumber(v: unknown): number {
  return typeof v === "bigint" ? Number(v) : Number(v);
}

/** A value as JSON can carry it: BigInt → number, or string beyond 2^53; Date → ISO. */
export function plain(v: unknown): unknown {
  if (typeof v === "bigint") {
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v.toString();
  }
  if (v instanceof Date) return Number.isFinite(v.getTime()) ? v.toISOString() : null;
  if (typeof v === "number" && !Number.isFinite(v)) return null;
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

function parseJson(v: unknown): unknown {
  if (typeof v !== "string") return v ?? null;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

function toEvent(r: Row): EventOut {
  return {
    event_id: String(r.event_id),
    type: String(r.type),
    event_type: String(r.event_type),
    user_id: String(r.user_id),
    occurred_at: microsToIso(toNumber(r.occurred_us)),
    received_at: microsToIso(toNumber(r.received_us)),
    source: String(r.source),
    payload: parseJson(r.payload),
    log_topic: String(r.log_topic),
    log_partition: toNumber(r.log_partition),
    log_offset: toNumber(r.log_offset),
  };
}

function toAlert(r: Row): AlertOut {
  const str = (v: unknown) => v === null || v === undefined ? null : String(v);
  const num = (v: unknown) => v === null || v === undefined ? null : toNumber(v);
  return {
    alert_id: String(r.alert_id),
    user_id: String(r.user_id),
    raised_at: microsToIso(toNumber(r.raised_us)),
    occurred_at: microsToIso(toNumber(r.occurred_us)),
    trigger_event_id: String(r.trigger_event_id),
    trigger_type: String(r.trigger_type),
    rule_score: toNumber(r.rule_score),
    fraud_score: toNumber(r.fraud_score),
    severity: String(r.severity),
    rules: typeof r.rules === "string" && r.rules !== "" ? r.rules.split(",") : [],
    reasons: parseJson(r.reasons),
    llm_status: String(r.llm_status),
    llm_score: num(r.llm_score),
    llm_verdict: str(r.llm_verdict),
    llm_rationale: str(r.llm_rationale),
    window_summary: parseJson(r.window_summary),
    event_ids: parseJson(r.event_ids),
    degraded: str(r.degraded),
  };
}

/** A quoted SQL identifier (column names read from a lake file's schema, never from a request). */
function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

const PLAIN_TYPES =
  /^(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|VARCHAR)$/;

/** A gold column in a form the engine can hand over and JSON can carry. */
function selectAs(name: string, type: string): string {
  const c = ident(name);
  if (PLAIN_TYPES.test(type)) return c;
  if (type.startsWith("TIMESTAMP")) return `epoch_us(${c}) AS ${c}`;
  if (type.startsWith("DECIMAL")) return `CAST(${c} AS DOUBLE) AS ${c}`;
  return `CAST(${c} AS VARCHAR) AS ${c}`;
}

function toJson(v: unknown, type: string): unknown {
  if (v === null || v === undefined) return null;
  if (type.startsWith("TIMESTAMP")) return microsToIso(toNumber(v));
  return plain(v);
}

/** A DuckDB list literal of lake paths (only paths and globs built from lake listings). */
function sqlList(paths: readonly string[]): string {
  return `[${paths.map((p) => `'${p.replaceAll("'", "''")}'`).join(", ")}]`;
}

/** Splits paths into groups whose list literal stays within `budget` bytes. */
function splitList(paths: readonly string[], budget: number): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let size = 2;
  for (const p of paths) {
    const n = new TextEncoder().encode(p.replaceAll("'", "''")).length + 4;
    if (n + 2 > budget) throw new Error("A lake path is too long for a query");
    if (cur.length > 0 && size + n > budget) {
      out.push(cur);
      cur = [];
      size = 2;
    }
    cur.push(p);
    size += n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Splits file entries into SQL list literals that each stay within the statement budget. */
export function chunkList(paths: readonly string[], budget = LIST_BUDGET): string[] {
  return splitList(paths, budget).map(sqlList);
}

/** Whether a bronze `dt=` directory holds only `type=<known type>` directories. */
async function onlyTypeDirs(dtDir: string): Promise<boolean> {
  try {
    for await (const e of Deno.readDir(dtDir)) {
      if (!e.isDirectory || !e.name.startsWith("type=") || !PARTITION_TYPES.has(e.name.slice(5))) {
        return false;
      }
    }
    return true;
  } catch {
    return false;
  }
}

async function fileNames(dir: string, pattern: RegExp): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isFile && pattern.test(e.name)) out.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

async function mtime(path: string): Promise<number | undefined> {
  try {
    const st = await Deno.stat(path);
    return st.isDirectory ? st.mtime?.getTime() ?? NaN : undefined;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

// -----------------------------------------------------------------------------------------------
// Cursors: base64url of `1|<occurred µs>|<event_id>|<topic>|<partition>|<offset>|<check>`. A cursor
// is a position, not a secret; the check catches truncated or edited cursors, and every field is
// validated, so a forged one can only move the start of the page.

interface Cursor {
  o: number;
  id: string;
  topic: string;
  partition: number;
  offset: number;
}

/** FNV-1a of `s` in base 36: a cursor's checksum (catches edits, not forgeries). */
export function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(36);
}

function encodeCursor(r: Row): string {
  const body = [
    "1",
    toNumber(r.occurred_us),
    String(r.event_id),
    String(r.log_topic),
    toNumber(r.log_partition),
    toNumber(r.log_offset),
  ].join("|");
  const bytes = new TextEncoder().encode(`${body}|${fnv1a(body)}`);
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

function decodeCursor(cursor: string): Cursor {
  const bad = () => new InvalidQueryError([{ path: "cursor", message: "is not a valid cursor" }]);
  if (!/^[A-Za-z0-9_-]{1,600}$/.test(cursor)) throw bad();
  let text: string;
  try {
    text = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    throw bad();
  }
  const parts = text.split("|");
  if (parts.length !== 7) throw bad();
  const [v, o, id, topic, partition, offset, check] = parts as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (v !== "1" || fnv1a(parts.slice(0, 6).join("|")) !== check) throw bad();
  if (!/^\d{1,16}$/.test(o) || !/^\d{1,10}$/.test(partition) || !/^\d{1,16}$/.test(offset)) {
    throw bad();
  }
  const c = { o: Number(o), id, topic, partition: Number(partition), offset: Number(offset) };
  if (
    c.o < MIN_US || c.o >= MAX_US || !UUID.test(id) || !TOPIC.test(topic) ||
    c.partition > 2_147_483_647 || !Number.isSafeInteger(c.offset)
  ) throw bad();
  return c;
}
