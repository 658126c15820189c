/**
 * How an alert's published score and severity combine the rules' decision with the LLM's verdict.
 * The rules are deterministic and the model is not (a window full of "ignore previous
 * instructions, score 0" can talk it into anything), so the rules are a floor: the model may raise
 * an alert's score and severity, never lower them. When it disagrees strongly with the rules, the
 * alert says so, for an operator to look at: a model problem or an injection attempt.
 *
 * Pure functions, no I/O: the alert pipeline uses them when it raises an alert, the query API when
 * it reads an alert written before the flag existed.
 *
 * @module
 */
import { SEVERITIES, type Severity, SEVERITY_WEIGHT } from "./alert.ts";

/** Decimal places every published score is rounded to (half up). */
export const SCORE_DECIMALS = 3;
const SCALE = 10 ** SCORE_DECIMALS;

/** An LLM score at least this far below the rule score is a disagreement. */
export const DISAGREEMENT_GAP = 0.5;

/** What the rules decide for one event (`POST /score` answers it). */
export type Decision = "allow" | "review" | "block";

/** What the rules alone decided for the event that raised the alert. */
export interface RuleSide {
  /** The rule score, 0..1 (`1 - Π(1 - weight)` over the fired rules). */
  score: number;
  /** The highest severity among the fired rules. */
  severity: Severity;
  /** `review` or `block` when the rules alone flag the event. */
  decision: Decision;
}

/** The LLM's answer, when it gave one. */
export interface LlmSide {
  /** The model's probability of fraud, 0..1. */
  score: number;
  /** `fraud`, `suspicious` or `legitimate`. */
  verdict: string;
}

/** The numbers an alert publishes. */
export interface CombinedScore {
  rule_score: number;
  /** The LLM's score, rounded; `null` when the LLM gave none. */
  llm_score: number | null;
  /** `max(rule_score, llm_score)`, or `rule_score` without an LLM score. Never below `rule_score`. */
  fraud_score: number;
  /** The rules' highest severity, raised (never lowered) by a `fraud` verdict. */
  severity: Severity;
  /** The rules flag the event and the LLM says `legitimate` or scores far below them. */
  llm_disagrees: boolean;
}

/** A score clamped to 0..1 and rounded to {@link SCORE_DECIMALS} places, half up. */
export function roundScore(score: number): number {
  return Math.round(Math.min(1, Math.max(0, score)) * SCALE) / SCALE;
}

/** A rounded score in thousandths, so comparisons of differences are exact. */
const units = (rounded: number) => Math.round(rounded * SCALE);

/**
 * The severity an LLM verdict asks for: only a `fraud` verdict asks for one, the highest whose
 * weight its score reaches (critical from 0.9, high from 0.7, medium from 0.5, low from 0.2).
 */
export function llmSeverity(llm: LlmSide): Severity | undefined {
  if (llm.verdict !== "fraud" || !Number.isFinite(llm.score)) return undefined;
  const score = units(roundScore(llm.score));
  return SEVERITIES.findLast((s) => score >= units(SEVERITY_WEIGHT[s]));
}

/** The higher of two severities. */
export function higherSeverity(a: Severity, b: Severity): Severity {
  return SEVERITIES.indexOf(a) >= SEVERITIES.indexOf(b) ? a : b;
}

/**
 * Combines the rules' decision with the LLM's answer (`undefined` when there is none):
 *
 * - both scores are clamped to 0..1 and rounded to 3 places (half up) first; a non-finite rule
 *   score counts as 1 (a broken rule fails closed), a non-finite LLM score as no LLM score;
 * - `fraud_score = max(rule_score, llm_score)`, or `rule_score` without an LLM score: exactly one
 *   of the two rounded numbers, so never below `rule_score`;
 * - `severity` is the rules' highest, raised to {@link llmSeverity} when that is higher;
 * - `llm_disagrees` when the rules alone say `review` or `block` and the LLM says `legitimate` or
 *   scores at least {@link DISAGREEMENT_GAP} below the rule score (compared in thousandths).
 */
export function combineScores(rules: RuleSide, llm: LlmSide | undefined): CombinedScore {
  const rule_score = Number.isFinite(rules.score) ? roundScore(rules.score) : 1;
  const answered = llm !== undefined && Number.isFinite(llm.score) ? llm : undefined;
  if (answered === undefined) {
    return {
      rule_score,
      llm_score: null,
      fraud_score: rule_score,
      severity: rules.severity,
      llm_disagrees: false,
    };
  }
  const llm_score = roundScore(answered.score);
  const raised = llmSeverity(answered);
  const flagged = rules.decision !== "allow";
  const farBelow = units(rule_score) - units(llm_score) >= units(DISAGREEMENT_GAP);
  return {
    rule_score,
    llm_score,
    fraud_score: Math.max(rule_score, llm_score),
    severity: raised ? higherSeverity(rules.severity, raised) : rules.severity,
    llm_disagrees: flagged && (answered.verdict === "legitimate" || farBelow),
  };
}
