/**
 * Validation: one raw event in, one {@link Envelope} or a list of issues out. HTTP and Kafka use the
 * same function, and it depends only on its inputs (no clock), so re-processing a Kafka record after
 * a crash yields the same result and the same bronze file.
 *
 * @module
 */
import { z } from "zod";
import {
  type Envelope,
  EVENT_TYPES,
  IncomingEnvelope,
  OTHER_TYPE,
  type PartitionType,
  PAYLOADS,
} from "../shared/schemas.ts";
import { isoToMicros, microsToIso } from "../shared/time.ts";

/**
 * The schemas of `shared/schemas.ts` (still the only source: `/schemas` and OpenAPI use them as
 * they are), compiled by zod into a fast path for valid input. Invalid input falls back to zod's
 * ordinary parser, so the issues are the same.
 */
const ENVELOPE = z.compile(IncomingEnvelope);
const COMPILED_PAYLOADS = Object.fromEntries(
  EVENT_TYPES.map((t) => [t, z.compile(PAYLOADS[t])]),
) as unknown as typeof PAYLOADS;

/** One thing wrong with an event. */
export interface Issue {
  /** Dotted path into the event, e.g. `payload.amount`; empty for the event as a whole. */
  path: string;
  message: string;
  code: string;
}

export type Validated = { ok: true; event: Envelope } | { ok: false; issues: Issue[] };

/** How strict validation is. */
export interface ValidationOptions {
  /** Events of unknown type: dead-letter them, or keep them in the `other` partition. */
  unknownTypes: "reject" | "other";
  /** Oldest accepted `occurred_at`, in ms before `received_at`. */
  maxPastMs: number;
  /** Latest accepted `occurred_at`, in ms after `received_at`. */
  maxFutureMs: number;
}

/** Where an event came from; fills the envelope fields the client may leave out. */
export interface EventContext {
  /** Reception time in ms since the epoch; overrides the event's own unless `trustReceivedAt`. */
  receivedAtMs: number;
  /** Keep a `received_at` already in the event (it was set by this gateway before Kafka). */
  trustReceivedAt: boolean;
  /** Default `source` when the event names none. */
  source: string;
  /** `event_id` for an event without one. */
  eventId: () => string;
}

/** Validates one raw event. Never throws for bad input. */
export function validateEvent(raw: unknown, ctx: EventContext, opts: ValidationOptions): Validated {
  const env = ENVELOPE.safeParse(raw);
  if (!env.success) return { ok: false, issues: toIssues(env.error, "") };
  const e = env.data;
  const broken = illFormedString(e, "");
  if (broken !== undefined) {
    return {
      ok: false,
      issues: [{
        path: broken,
        code: "invalid_string",
        message: "contains a lone UTF-16 surrogate (\\uD800-\\uDFFF without its pair)",
      }],
    };
  }
  const issues: Issue[] = [];

  let type: PartitionType;
  let payload: Record<string, unknown> = e.payload;
  if (Object.hasOwn(PAYLOADS, e.type)) {
    type = e.type as keyof typeof PAYLOADS;
    const p = COMPILED_PAYLOADS[type].safeParse(e.payload);
    if (p.success) payload = p.data as Record<string, unknown>;
    else issues.push(...toIssues(p.error, "payload"));
  } else if (opts.unknownTypes === "other") {
    type = OTHER_TYPE;
  } else {
    return {
      ok: false,
      issues: [{ path: "type", code: "unknown_type", message: `Unknown event type "${e.type}"` }],
    };
  }

  const receivedUs = ctx.trustReceivedAt && e.received_at
    ? isoToMicros(e.received_at)
    : ctx.receivedAtMs * 1000;
  const occurredUs = isoToMicros(e.occurred_at);
  const timeIssue = checkTimes(e.occurred_at, occurredUs, receivedUs, opts);
  if (timeIssue !== undefined) issues.push(timeIssue);
  if (issues.length > 0) return { ok: false, issues };

  return {
    ok: true,
    event: {
      event_id: e.event_id?.toLowerCase() ?? ctx.eventId(),
      type,
      event_type: e.type,
      user_id: e.user_id,
      occurred_at: utcIso(e.occurred_at, occurredUs),
      received_at: ctx.trustReceivedAt && e.received_at
        ? utcIso(e.received_at, receivedUs)
        : microsToIso(receivedUs),
      source: e.source ?? ctx.source,
      payload,
    },
  };
}

/**
 * An instant as `YYYY-MM-DDTHH:MM:SS.ffffffZ`: `iso` itself when it is in that form already (what
 * this gateway writes to the log; zod checked the rest), otherwise rebuilt from its µs.
 */
function utcIso(iso: string, us: number): string {
  return iso.length === 27 && iso.charCodeAt(19) === DOT && iso.charCodeAt(26) === UPPER_Z
    ? iso
    : microsToIso(us);
}
const DOT = 0x2e, UPPER_Z = 0x5a;

/** What is wrong with an event's times, if anything: outside the lake's years, too old, too new. */
function checkTimes(
  occurredAt: string,
  occurredUs: number,
  receivedUs: number,
  opts: ValidationOptions,
): Issue | undefined {
  // An offset can carry a valid "9999-12-31T23:59:59-23:59" into UTC year 10000, and a Kafka record
  // can carry any received_at: the lake's `dt=YYYY-MM-DD` needs a four-digit UTC year, and an event
  // it cannot partition would block its log partition forever.
  if (!inLakeYears(receivedUs)) {
    return {
      path: "received_at",
      code: "out_of_range",
      message: "received_at is outside the years 0000 to 9999 in UTC",
    };
  } else if (!inLakeYears(occurredUs)) {
    return {
      path: "occurred_at",
      code: "out_of_range",
      message: `occurred_at "${occurredAt}" is outside the years 0000 to 9999 in UTC`,
    };
  } else if (occurredUs < receivedUs - opts.maxPastMs * 1000) {
    return {
      path: "occurred_at",
      code: "too_old",
      message: `occurred_at "${occurredAt}" is more than ${
        Math.round(opts.maxPastMs / 86_400_000)
      } days before received_at`,
    };
  } else if (occurredUs > receivedUs + opts.maxFutureMs * 1000) {
    return {
      path: "occurred_at",
      code: "in_future",
      message: `occurred_at "${occurredAt}" is more than ${
        Math.round(opts.maxFutureMs / 1000)
      } s after received_at`,
    };
  }
  return undefined;
}

/** First and last+1 µs with a four-digit UTC year. */
const MIN_LAKE_US = Date.parse("0000-01-01T00:00:00Z") * 1000;
const END_LAKE_US = Date.parse("+010000-01-01T00:00:00Z") * 1000;

function inLakeYears(us: number): boolean {
  return us >= MIN_LAKE_US && us < END_LAKE_US;
}

function toIssues(error: z.ZodError, prefix: string): Issue[] {
  return error.issues.map((i) => ({
    path: [prefix, ...i.path.map(String)].filter(Boolean).join("."),
    message: i.code === "unrecognized_keys" ? unknownKeysMessage(i.keys) : i.message,
    code: i.code,
  }));
}

/** Most unknown keys an issue names, and their longest shown length. */
const SHOWN_KEYS = 5, SHOWN_KEY_CHARS = 64;

/**
 * zod quotes every unknown key in full: a body of one huge key, or of 100 000 keys, would come back
 * as a megabytes-long message in the response and the dead letter. The keys are cut down here.
 */
function unknownKeysMessage(keys: string[]): string {
  const shown = keys.slice(0, SHOWN_KEYS).map((k) =>
    JSON.stringify(k.length > SHOWN_KEY_CHARS ? `${k.slice(0, SHOWN_KEY_CHARS)}…` : k)
  );
  const more = keys.length - shown.length;
  return `Unrecognized key${keys.length === 1 ? "" : "s"}: ${shown.join(", ")}${
    more > 0 ? ` and ${more} more` : ""
  }`;
}

/**
 * The path of the first string (value or key) that is not well-formed UTF-16, if any. A JSON
 * escape like `"\ud800"` parses into a lone surrogate that Parquet stores as U+FFFD: two different
 * user ids could merge into one in the lake, so such events are refused instead.
 */
function illFormedString(value: unknown, path: string): string | undefined {
  // The walk builds no path while everything is well formed: this runs for every event.
  const at = illFormedAt(value);
  if (at === undefined) return undefined;
  return at.reduce((p, key) => p ? `${p}.${key}` : key, path);
}

/** The keys (indexes, `?` for an ill-formed key) down to the first ill-formed string. */
function illFormedAt(value: unknown): string[] | undefined {
  if (typeof value === "string") return value.isWellFormed() ? undefined : [];
  if (typeof value !== "object" || value === null) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const bad = illFormedAt(value[i]);
      if (bad !== undefined) return (bad.unshift(String(i)), bad);
    }
    return undefined;
  }
  for (const k in value) {
    if (!Object.hasOwn(value, k)) continue;
    if (!k.isWellFormed()) return ["?"];
    const bad = illFormedAt((value as Record<string, unknown>)[k]);
    if (bad !== undefined) return (bad.unshift(k), bad);
  }
  return undefined;
}
