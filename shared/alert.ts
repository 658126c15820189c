/**
 * The fraud alert as every layer sees it: the pipeline raises it, the sinks (log, alerts topic,
 * lake table) deliver it, the query API and the dashboard show it, and metrics label it. The rule
 * names and severities are part of that contract, so their sets are fixed here.
 *
 * @module
 */
import { z } from "zod";
import { DRAFT_7 } from "./schemas.ts";

/** How bad a fired rule is, from least to most. */
export const SEVERITIES = ["low", "medium", "high", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Weight of each severity: the rule score is `1 - Π(1 - weight)` over the rules that fired. */
export const SEVERITY_WEIGHT: Readonly<Record<Severity, number>> = {
  low: 0.2,
  medium: 0.5,
  high: 0.7,
  critical: 0.9,
};

/** The name of every fraud rule (`pipeline/fraud/rules.ts` defines each one under one of these). */
export const RULE_NAMES = [
  "login_burst_then_purchase",
  "high_frequency_login",
  "ip_login_burst",
  "card_velocity",
  "repeated_login_failures",
  "high_value_purchase",
  "rapid_successive_purchases",
  "high_api_failure_rate",
  "unusual_location_login",
  "unusual_time_activity",
] as const;
export type RuleName = (typeof RULE_NAMES)[number];

/** The highest severity among an alert's rules ("low" when none). */
export function maxSeverity(a: { rules: readonly { severity: Severity }[] }): Severity {
  let best = 0;
  for (const r of a.rules) best = Math.max(best, SEVERITIES.indexOf(r.severity));
  return SEVERITIES[best]!;
}

/** A rule that fired for an event. */
export interface FiredRule {
  name: string;
  severity: Severity;
  reason: string;
}

/** The LLM's part of an alert. */
export type LlmPart =
  | {
    status: "ok";
    fraud_score: number;
    verdict: string;
    rationale: string;
    model: string;
    latency_ms: number;
  }
  | { status: "unavailable" | "disabled"; reason: string };

/** A fraud alert, as every sink receives it. */
export interface Alert {
  alert_id: string;
  user_id: string;
  raised_at: string;
  trigger_event_id: string;
  trigger_type: string;
  occurred_at: string;
  rules: FiredRule[];
  /** The rules' score, 0..1. */
  rule_score: number;
  /** The LLM's score (rounded like the others), or `null` when it gave none. */
  llm_score: number | null;
  /**
   * `max(rule_score, llm_score)`, or `rule_score` without an LLM score: the rules are a floor
   * (`shared/alert_score.ts`).
   */
  fraud_score: number;
  /** The highest fired rule's severity, raised (never lowered) by an LLM `fraud` verdict. */
  severity: Severity;
  /** The rules flag the event and the LLM says `legitimate` or scores far below them. */
  llm_disagrees: boolean;
  llm: LlmPart;
  window: { events: number; types: Record<string, number>; first_at: string; last_at: string };
  event_ids: string[];
  /** Why the windows or the LLM could not be used, when they could not. */
  degraded?: string;
}

// ---------------------------------------------------------------------------------------------
// The alert as a record of the alerts topic, for a schema registry. The zod schema is held to the
// `Alert` type by the compiler (the check below fails `deno check` when the two drift apart), and
// the JSON Schema derived from it is registered as the alerts topic's value schema.

const FiredRuleRecord = z.strictObject({
  name: z.string(),
  severity: z.enum(SEVERITIES),
  reason: z.string(),
});
const LlmPartRecord = z.discriminatedUnion("status", [
  z.strictObject({
    status: z.literal("ok"),
    fraud_score: z.number(),
    verdict: z.string(),
    rationale: z.string(),
    model: z.string(),
    latency_ms: z.number(),
  }),
  z.strictObject({ status: z.enum(["unavailable", "disabled"]), reason: z.string() }),
]);
/** An alert as the alerts topic carries it (JSON, one per record). */
const AlertRecord = z.strictObject({
  alert_id: z.string(),
  user_id: z.string(),
  raised_at: z.string(),
  trigger_event_id: z.string(),
  trigger_type: z.string(),
  occurred_at: z.string(),
  rules: z.array(FiredRuleRecord),
  rule_score: z.number(),
  llm_score: z.number().nullable(),
  fraud_score: z.number(),
  severity: z.enum(SEVERITIES),
  llm_disagrees: z.boolean(),
  llm: LlmPartRecord,
  window: z.strictObject({
    events: z.number(),
    types: z.record(z.string(), z.number()),
    first_at: z.string(),
    last_at: z.string(),
  }),
  event_ids: z.array(z.string()),
  degraded: z.string().exactOptional(),
});

/**
 * The JSON Schema (draft-07) of a record on the alerts topic: the value schema registered for it.
 * Closed objects, so a field added to `Alert` later is a compatible change only as an optional one.
 */
export function alertJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(AlertRecord, DRAFT_7) as Record<string, unknown>;
}

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
type _AlertRecordMatchesAlert = Assert<Same<z.output<typeof AlertRecord>, Alert>>;
