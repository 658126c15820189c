/**
 * What the query API answers, and how lake rows become it: times as ISO-8601 UTC with
 * microseconds, JSON text parsed, BIGINTs as numbers.
 *
 * @module
 */
import { SEVERITIES, type Severity } from "../../shared/alert.ts";
import { combineScores } from "../../shared/alert_score.ts";
import { microsToIso } from "../../shared/time.ts";

/** A row as the engine hands it over. */
export type Row = Record<string, unknown>;

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
  /** The rules' score. */
  rule_score: number;
  /** `max(rule_score, llm_score)`, or `rule_score` without an LLM score. */
  fraud_score: number;
  /** Highest severity among the rules, raised (never lowered) by an LLM `fraud` verdict. */
  severity: string;
  /** Names of the rules that fired. */
  rules: string[];
  /** `[{name, severity, reason}]` as the detector gave them. */
  reasons: unknown;
  llm_status: string;
  /** The LLM's score; `null` when it gave none. */
  llm_score: number | null;
  /** The rules flag the event and the LLM says `legitimate` or scores far below them. */
  llm_disagrees: boolean;
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

/** The bronze columns a query reads for {@link toEvent}. */
export const EVENT_COLUMNS =
  `event_id, type, event_type, user_id, epoch_us(occurred_at) AS occurred_us,
  epoch_us(received_at) AS received_us, source, payload, log_topic, log_partition, log_offset`;

/** The silver columns a query reads for {@link toEvent} (`type` is added per table). */
export const SILVER_EVENT_COLUMNS =
  `event_id, event_type, user_id, epoch_us(occurred_at) AS occurred_us,
  epoch_us(received_at) AS received_us, source, payload, log_topic, log_partition, log_offset`;

/** Rows strictly after the cursor in (occurred_at, event_id, log_topic, log_partition, offset). */
export const AFTER_CURSOR = `(occurred_at > make_timestamp(CAST(? AS BIGINT))
  OR (occurred_at = make_timestamp(CAST(? AS BIGINT)) AND (event_id > ?
  OR (event_id = ? AND (log_topic > ?
  OR (log_topic = ? AND (log_partition > CAST(? AS INTEGER)
  OR (log_partition = CAST(? AS INTEGER) AND log_offset > CAST(? AS BIGINT)))))))))`;

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function compareEvents(a: Row, b: Row): number {
  return toNumber(a.occurred_us) - toNumber(b.occurred_us) ||
    cmp(String(a.event_id), String(b.event_id)) ||
    cmp(String(a.log_topic), String(b.log_topic)) ||
    toNumber(a.log_partition) - toNumber(b.log_partition) ||
    toNumber(a.log_offset) - toNumber(b.log_offset);
}

/** A BIGINT as a number (exact below 2^53; the lake's counts, offsets and µs times are). */
export function toNumber(v: unknown): number {
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

export function parseJson(v: unknown): unknown {
  if (typeof v !== "string") return v ?? null;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

export function toEvent(r: Row): EventOut {
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

/**
 * One alerts-table row as the API answers it. A row written before alerts carried
 * `llm_disagrees` (the column is missing or NULL) held the LLM's score as its `fraud_score`: it is
 * answered with the combining rule applied to its stored scores, so every alert the API returns
 * keeps the rules as a floor.
 */
export function toAlert(r: Row): AlertOut {
  const str = (v: unknown) => v === null || v === undefined ? null : String(v);
  const num = (v: unknown) => v === null || v === undefined ? null : toNumber(v);
  const llmScore = num(r.llm_score);
  const llmVerdict = str(r.llm_verdict);
  const scores = typeof r.llm_disagrees === "boolean"
    ? {
      fraud_score: toNumber(r.fraud_score),
      severity: String(r.severity),
      llm_disagrees: r.llm_disagrees,
    }
    : legacyScores(toNumber(r.rule_score), String(r.severity), llmScore, llmVerdict);
  return {
    alert_id: String(r.alert_id),
    user_id: String(r.user_id),
    raised_at: microsToIso(toNumber(r.raised_us)),
    occurred_at: microsToIso(toNumber(r.occurred_us)),
    trigger_event_id: String(r.trigger_event_id),
    trigger_type: String(r.trigger_type),
    rule_score: toNumber(r.rule_score),
    fraud_score: scores.fraud_score,
    severity: scores.severity,
    rules: typeof r.rules === "string" && r.rules !== "" ? r.rules.split(",") : [],
    reasons: parseJson(r.reasons),
    llm_status: String(r.llm_status),
    llm_score: llmScore,
    llm_disagrees: scores.llm_disagrees,
    llm_verdict: llmVerdict,
    llm_rationale: str(r.llm_rationale),
    window_summary: parseJson(r.window_summary),
    event_ids: parseJson(r.event_ids),
    degraded: str(r.degraded),
  };
}

/**
 * The combining rule on a row from before it: its `severity` was the rules' highest, and every
 * alert was raised because the rules flagged its event.
 */
function legacyScores(
  ruleScore: number,
  severity: string,
  llmScore: number | null,
  llmVerdict: string | null,
): { fraud_score: number; severity: string; llm_disagrees: boolean } {
  const known = (SEVERITIES as readonly string[]).includes(severity);
  const c = combineScores(
    { score: ruleScore, severity: known ? severity as Severity : "low", decision: "review" },
    llmScore === null ? undefined : { score: llmScore, verdict: llmVerdict ?? "" },
  );
  return {
    fraud_score: c.fraud_score,
    severity: known ? c.severity : severity,
    llm_disagrees: c.llm_disagrees,
  };
}

/** A quoted SQL identifier (column names read from a lake file's schema, never from a request). */
function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

const PLAIN_TYPES =
  /^(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|VARCHAR)$/;

/** A gold column in a form the engine can hand over and JSON can carry. */
export function selectAs(name: string, type: string): string {
  const c = ident(name);
  if (PLAIN_TYPES.test(type)) return c;
  if (type.startsWith("TIMESTAMP")) return `epoch_us(${c}) AS ${c}`;
  if (type.startsWith("DECIMAL")) return `CAST(${c} AS DOUBLE) AS ${c}`;
  return `CAST(${c} AS VARCHAR) AS ${c}`;
}

export function toJson(v: unknown, type: string): unknown {
  if (v === null || v === undefined) return null;
  if (type.startsWith("TIMESTAMP")) return microsToIso(toNumber(v));
  return plain(v);
}
