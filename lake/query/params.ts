/**
 * The query API's parameters: zod schemas that validate every input before anything is listed or
 * read (the OpenAPI document describes the parameters from the same schemas), and the limits of
 * the time range.
 *
 * @module
 */
import { z } from "zod";
import { SEVERITIES } from "../../shared/alert.ts";
import { EVENT_TYPES, OTHER_TYPE } from "../../shared/schemas.ts";
import { isoToMicros } from "../../shared/time.ts";

export const HOUR_US = 3_600_000_000;
export const DAY_US = 86_400_000_000;
/** Years outside this range are refused: µs since the epoch must stay exact doubles (< 2^53). */
export const MIN_US = Date.parse("1970-01-01T00:00:00Z") * 1000;
export const MAX_US = Date.parse("2200-01-01T00:00:00Z") * 1000;

/** Event types a query may filter on: the known types and `other`. */
export const QUERY_TYPES = [...EVENT_TYPES, OTHER_TYPE] as const;

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

/** Validates `input` against `schema`, or throws {@link InvalidQueryError} with every issue. */
export function parse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  throw new InvalidQueryError(r.error.issues.map((i) => ({
    path: i.code === "unrecognized_keys"
      ? i.keys.map((k) => k.slice(0, 64)).join(",")
      : i.path.map(String).join("."),
    message: i.code === "unrecognized_keys" ? "unknown query parameter" : i.message,
  })));
}
