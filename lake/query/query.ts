/**
 * The lake's read side: bronze events, alerts, a user's view and event counts, for the query API
 * (`routes/query.ts`). Every input is validated with zod before anything is read (`params.ts`);
 * values reach DuckDB only as bound parameters, and the files it reads only come from snapshots
 * of the tables' Delta logs (`files.ts`), never from a request or a directory listing.
 *
 * Alerts are one small file each, read a partition at a time and kept (`alerts.ts`).
 *
 * DuckDB-wasm 1.28 (DuckDB 0.9.1) has no ICU: `date_trunc`/`strftime` do not take TIMESTAMPTZ, so
 * times go through `epoch_us()` and integer arithmetic (hour bucket = `epoch_us(t) // 3600000000`).
 *
 * @module
 */
import type { LakeEngine, Param } from "../engine/engine.ts";
import { localFiles, userKey } from "../layout.ts";
import { readSilverProgress } from "../silver/plan.ts";
import type { Lake } from "../lake.ts";
import { hasLocalDirs } from "../storage/store.ts";
import { OverloadedError } from "../../shared/errors.ts";
import { microsToIso } from "../../shared/time.ts";
import { AlertDays } from "./alerts.ts";
import { decodeCursor, encodeCursor } from "./cursor.ts";
import { chunkList, dateOf, EventFiles, type EventSources, LIST_BUDGET } from "./files.ts";
import {
  type AlertsInput,
  DAY_US,
  type EventsInput,
  HOUR_US,
  InvalidQueryError,
  MAX_US,
  parse,
  querySchemas,
  type StatsInput,
} from "./params.ts";
import {
  AFTER_CURSOR,
  type AlertOut,
  cmp,
  compareEvents,
  EVENT_COLUMNS,
  type EventsPage,
  type Row,
  selectAs,
  SILVER_EVENT_COLUMNS,
  type StatsOut,
  toEvent,
  toJson,
  toNumber,
  type UserOut,
} from "./rows.ts";

export { chunkList } from "./files.ts";
export { InvalidQueryError, QUERY_TYPES, querySchemas } from "./params.ts";
export type { AlertsInput, EventsInput, StatsInput } from "./params.ts";
export { fnv1a } from "./cursor.ts";
export type { AlertOut, EventOut, EventsPage, StatsOut, UserOut } from "./rows.ts";

/** A statement longer than this is never sent: it would corrupt the DuckDB instance. */
const MAX_SQL_BYTES = 32_000;
/**
 * DuckDB-wasm on Node resolves every path it reads, glob or not, through fast-glob: a lake under a
 * path with pattern characters cannot be read (`/data/lake(1)` finds no files).
 */
const GLOB_CHARS = /[*?[\](){}!\\]/;

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

/** Read queries over the lake. Give it a {@link LakeEngine} of its own: reads then never wait. */
export class LakeQuery {
  readonly #engine: LakeEngine;
  readonly #lake: Lake;
  readonly #files: EventFiles;
  readonly #maxLimit: number;
  readonly #maxRangeUs: number;
  readonly #maxPastUs: number;
  readonly #maxFutureUs: number;
  readonly #maxPending: number;
  readonly #now: () => number;
  readonly #schemas: ReturnType<typeof querySchemas>;
  readonly #listBudget: number;
  readonly #alertDays: AlertDays;
  #pending = 0;

  constructor(engine: LakeEngine, lake: Lake, options: LakeQueryOptions = {}) {
    const int = (name: string, v: number, min: number, max: number) => {
      if (!Number.isSafeInteger(v) || v < min || v > max) {
        throw new RangeError(`LakeQuery option ${name} must be an integer in [${min}, ${max}]`);
      }
      return v;
    };
    this.#engine = engine;
    this.#lake = lake;
    const root = hasLocalDirs(lake.store) ? lake.store.localDir("") : "";
    if (GLOB_CHARS.test(root)) {
      throw new Error(`DuckDB-wasm reads paths as globs: cannot query a lake under ${root}`);
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
    this.#files = new EventFiles(lake);
    this.#alertDays = new AlertDays(
      lake,
      (sources, sql, params) => this.#select(sources, sql, params),
    );
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
      const sources = await this.#eventSources(lower, toUs, q.type, q.user_id);
      const where = [
        "occurred_at >= make_timestamp(CAST(? AS BIGINT))",
        "occurred_at < make_timestamp(CAST(? AS BIGINT))",
      ];
      const params: Param[] = [lower, toUs];
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
      const rows = await this.#readEvents(sources, {
        where,
        params,
        ...(q.user_id !== undefined ? { userId: q.user_id } : {}),
        ...(q.type !== undefined ? { type: q.type } : {}),
        newestFirst: false,
        limit: limit + 1,
      });
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
      alerts: await this.#alertDays.find(fromUs, toUs, {
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
      const sources = await this.#eventSources(fromUs, undefined, undefined, userId);
      const events = await this.#readEvents(sources, {
        where: ["occurred_at >= make_timestamp(CAST(? AS BIGINT))"],
        params: [fromUs],
        userId,
        newestFirst: true,
        limit: 50,
      });
      const alerts = await this.#alertDays.find(nowUs - this.#maxRangeUs, MAX_US, {
        userId,
        limit: 20,
      });
      const features = await this.#features(userId, nowUs);
      return {
        user_id: userId,
        recent_events: events.map(toEvent),
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
      const byType = new Map<string, number>();
      const byHour = new Map<number, number>();
      let total = 0;
      const add = (type: string, h: number, n: number) => {
        byType.set(type, (byType.get(type) ?? 0) + n);
        byHour.set(h, (byHour.get(h) ?? 0) + n);
        total += n;
      };
      // Whole hours inside the range come from the files' hour summaries; rows are read only in
      // the partial hours at its ends, and in files written without summaries.
      const firstWhole = Math.ceil(fromUs / HOUR_US), endWhole = Math.floor(toUs / HOUR_US);
      const edges: string[] = [], whole: string[] = [];
      const bounds = { maxPastUs: this.#maxPastUs, maxFutureUs: this.#maxFutureUs };
      for (const f of await this.#files.summaries(fromUs, toUs, bounds)) {
        if (!f.hours) {
          whole.push(f.key);
          continue;
        }
        let partial = false;
        for (const [hour, n] of Object.entries(f.hours)) {
          const h = Date.parse(`${hour}:00:00Z`) * 1000 / HOUR_US;
          if (h >= firstWhole && h < endWhole) add(f.type, h, n);
          else if (h * HOUR_US < toUs && (h + 1) * HOUR_US > fromUs) partial = true;
        }
        if (partial) edges.push(f.key);
      }
      const count = async (keys: string[], skipWhole: boolean) => {
        if (keys.length === 0) return;
        const params: Param[] = [fromUs, toUs];
        let where = `occurred_at >= make_timestamp(CAST(? AS BIGINT))
                 AND occurred_at < make_timestamp(CAST(? AS BIGINT))`;
        if (skipWhole && firstWhole < endWhole) {
          where += ` AND NOT (occurred_at >= make_timestamp(CAST(? AS BIGINT))
                          AND occurred_at < make_timestamp(CAST(? AS BIGINT)))`;
          params.push(firstWhole * HOUR_US, endWhole * HOUR_US);
        }
        const rows = await this.#select(
          await localFiles(this.#lake.store, keys),
          (files) =>
            `SELECT type, epoch_us(occurred_at) // ${HOUR_US} AS h, count(*) AS n
               FROM read_parquet(${files}, union_by_name = true, hive_partitioning = true,
                                 hive_types = {'dt': VARCHAR, 'type': VARCHAR})
              WHERE ${where} GROUP BY ALL`,
          params,
        );
        for (const r of rows) add(String(r.type), toNumber(r.h), toNumber(r.n));
      };
      await count(whole, false);
      await count(edges, true);
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

  /**
   * Starts the engine (its WebAssembly compiles on the first call) and reads the logs of the
   * tables queries read, so the first query does not wait for either.
   */
  async warm(): Promise<void> {
    await Promise.all([
      this.#engine.query("SELECT 1"),
      readSilverProgress(this.#lake.store),
      ...this.#lake.tables().map((t) => t.snapshot()),
    ]);
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

  #eventSources(fromUs: number, toUs: number | undefined, type?: string, userId?: string) {
    const bounds = { maxPastUs: this.#maxPastUs, maxFutureUs: this.#maxFutureUs };
    const key = userId === undefined ? undefined : userKey(userId);
    return this.#files.sources(fromUs, toUs, type, bounds, key);
  }

  /**
   * Events of every source that match `f`, in `(occurred_at, event_id, log position)` order (or
   * its reverse), at most `f.limit`. Each statement (one per source and chunk of files) returns
   * its first `limit` rows and the lists are merged here; a row silver and the tail both hold (a
   * run committed between reading silver's progress and its tables) is kept once.
   */
  async #readEvents(
    sources: EventSources,
    f: {
      where: string[];
      params: Param[];
      userId?: string;
      type?: string;
      newestFirst: boolean;
      limit: number;
    },
  ): Promise<Row[]> {
    const dir = f.newestFirst ? " DESC" : "";
    const order = `ORDER BY occurred_at${dir}, event_id${dir}, log_topic${dir}, ` +
      `log_partition${dir}, log_offset${dir} LIMIT CAST(? AS BIGINT)`;
    const rows: Row[] = [];
    const read = async (
      paths: string[],
      select: (files: string) => string,
      typeColumn: string,
      silver: boolean,
    ) => {
      if (paths.length === 0) return;
      const where = [...f.where], params = [...f.params];
      if (f.userId !== undefined) {
        // The key is a number computed here (never request text): it lets the scan skip every
        // row group of other users by its statistics (see `userKey`).
        if (silver) where.push(`user_key = ${userKey(f.userId)}`);
        where.push("user_id = ?");
        params.push(f.userId);
      }
      if (f.type !== undefined && typeColumn) {
        (where.push(`${typeColumn} = ?`), params.push(f.type));
      }
      rows.push(
        ...await this.#select(
          paths,
          (files) => `${select(files)} WHERE ${where.join(" AND ")} ${order}`,
          [...params, f.limit],
        ),
      );
    };
    // Every silver file of the current layout starts with the same typed columns (COMMON_COLUMNS
    // … USER_KEY in silver/spec.ts), which are all a query reads: without union_by_name DuckDB
    // binds a statement from its first file's footer instead of every file's, and a statement
    // with parameters is bound twice (prepare, then again with the values), so that halves the
    // cost per file. A file lacking a column, or with another type, would be skipped silently:
    // a change to those columns needs a new SILVER_LAYOUT (queries then read bronze alone).
    const silver = (type: string) => (files: string) =>
      `SELECT ${SILVER_EVENT_COLUMNS}, ${type} AS type FROM read_parquet(${files},
         union_by_name = false, hive_partitioning = false)`;
    await read(sources.silver, silver("event_type"), "event_type", true);
    await read(sources.rejects, silver("bronze_type"), "bronze_type", true);
    await read(
      sources.tail,
      (files) =>
        `SELECT ${EVENT_COLUMNS} FROM read_parquet(${files}, union_by_name = true,
           hive_partitioning = true, hive_types = {'dt': VARCHAR, 'type': VARCHAR})`,
      "", // the tail's files were chosen by type already
      false,
    );
    const seen = new Set<string>();
    return rows
      .sort(f.newestFirst ? (a, b) => compareEvents(b, a) : compareEvents)
      .filter((r) => {
        const at = `${r.log_topic}\u0000${r.log_partition}\u0000${r.log_offset}`;
        return seen.has(at) ? false : (seen.add(at), true);
      })
      .slice(0, f.limit);
  }

  /** The user's rows of gold/user_daily_features for the last 30 days, newest first. */
  async #features(userId: string, nowUs: number): Promise<Record<string, unknown>[]> {
    const table = this.#lake.userDailyFeatures;
    const from = dateOf(nowUs - 30 * DAY_US), to = dateOf(nowUs);
    const files = await localFiles(
      this.#lake.store,
      (await table.snapshot()).filesWhere((v) => !!v.dt && v.dt >= from && v.dt <= to)
        .map((f) => table.keyOf(f.path)),
    );
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
