/**
 * Fraud rules: pure functions of one event and the window facts read for it. Each rule has a name,
 * a severity and a human-readable reason; the rule score combines the severities of the rules that
 * fired. No I/O and no clock here: time is the event's `occurred_at`, so replaying the same events
 * gives the same decisions, and tests need no fake timers.
 *
 * @module
 */
import type { Envelope } from "../../shared/schemas.ts";
import {
  type FiredRule,
  type RuleName,
  type Severity,
  SEVERITY_WEIGHT,
} from "../../shared/alert.ts";
import type { Decision } from "../../shared/alert_score.ts";

export { SEVERITY_WEIGHT };

/** Thresholds of the rules; every one is configurable (see `config.ts`). */
export interface Thresholds {
  /** high_frequency_login: more than this many logins in a minute. */
  loginsPerMinute: number;
  /** repeated_login_failures: at least this many failures since the last successful login. */
  failuresInARow: number;
  /** high_value_purchase: an amount above this. */
  highValueAmount: number;
  /** rapid_successive_purchases: at least this many purchases in an hour. */
  purchasesPerHour: number;
  /** high_api_failure_rate: at least this many failed API calls in a minute. */
  apiFailuresPerMinute: number;
  /** login_burst_then_purchase: a purchase after more than this many logins in `burstWindowMs`. */
  burstLogins: number;
  burstWindowMs: number;
  /** ip_login_burst: more than this many logins from one IP in a minute, across users. */
  ipLoginsPerMinute: number;
  /** card_velocity: at least this many purchases with one card fingerprint in an hour. */
  cardPurchasesPerHour: number;
  /** unusual_time_activity: only for users seen on at least this many distinct days. */
  unusualHourMinDays: number;
  /** A rule score at or above this raises an alert (and asks the LLM). */
  alertScore: number;
  /** A rule score at or above this makes `POST /score` answer "block". */
  blockScore: number;
}

/** The seeds' thresholds. */
export const DEFAULT_THRESHOLDS: Thresholds = {
  loginsPerMinute: 10,
  failuresInARow: 3,
  highValueAmount: 1000,
  purchasesPerHour: 5,
  apiFailuresPerMinute: 5,
  burstLogins: 10,
  burstWindowMs: 5 * 60_000,
  ipLoginsPerMinute: 30,
  cardPurchasesPerHour: 5,
  unusualHourMinDays: 7,
  alertScore: 0.7,
  blockScore: 0.9,
};

/** What the windows said about one event (absent when not read for its type). */
export interface Facts {
  /** The user's logins in the minute up to this event. */
  loginsLastMinute?: number;
  /** The user's logins in the burst window up to this event. */
  loginsInBurstWindow?: number;
  /** Login failures since the user's last successful login (bounded read). */
  failuresSinceLogin?: number;
  purchasesLastHour?: number;
  apiFailuresLastMinute?: number;
  ipLoginsLastMinute?: number;
  cardPurchasesLastHour?: number;
  /** Distinct days the user was active on in the last 30 days, and on how many at this hour ±1. */
  activeDays?: number;
  activeDaysAtThisHour?: number;
  /** The user's earlier countries, when this login's country was first seen with this event. */
  newCountryAfter?: string[];
}

/** The synchronous rule decision for one event. */
export interface RuleDecision {
  /** 0..1; 0 when no rule fired. */
  score: number;
  decision: Decision;
  rules: FiredRule[];
}

interface Rule {
  name: RuleName;
  severity: Severity;
  /** The reason when the rule fires, or undefined. */
  check(event: Envelope, facts: Facts, t: Thresholds): string | undefined;
}

const num = (v: unknown): number | undefined => typeof v === "number" ? v : undefined;

/** An API call that failed: a server error, or refused authentication or rate limiting. */
export function isApiFailure(event: Envelope): boolean {
  if (event.type !== "api_call") return false;
  const status = num(event.payload.status_code) ?? 0;
  return status >= 500 || status === 401 || status === 403 || status === 429;
}

/** Every rule, in the order reasons are listed. */
export const RULES: readonly Rule[] = [
  {
    name: "login_burst_then_purchase",
    severity: "critical",
    check: (e, f, t) =>
      e.type === "purchase" && (f.loginsInBurstWindow ?? 0) > t.burstLogins
        ? `purchase after ${f.loginsInBurstWindow} logins in ${
          t.burstWindowMs / 60_000
        } min (bot attack pattern, > ${t.burstLogins})`
        : undefined,
  },
  {
    // Medium on its own (a retrying client can do it); with a purchase it becomes the bot attack.
    name: "high_frequency_login",
    severity: "medium",
    check: (e, f, t) =>
      e.type === "login" && (f.loginsLastMinute ?? 0) > t.loginsPerMinute
        ? `${f.loginsLastMinute} logins in 1 min (> ${t.loginsPerMinute})`
        : undefined,
  },
  {
    name: "ip_login_burst",
    severity: "high",
    check: (e, f, t) =>
      e.type === "login" && (f.ipLoginsLastMinute ?? 0) > t.ipLoginsPerMinute
        ? `${f.ipLoginsLastMinute} logins from IP ${e.payload.ip} in 1 min (> ${t.ipLoginsPerMinute})`
        : undefined,
  },
  {
    name: "card_velocity",
    severity: "high",
    check: (e, f, t) =>
      e.type === "purchase" && (f.cardPurchasesLastHour ?? 0) >= t.cardPurchasesPerHour
        ? `${f.cardPurchasesLastHour} purchases with one card in 1 h (>= ${t.cardPurchasesPerHour})`
        : undefined,
  },
  {
    name: "repeated_login_failures",
    severity: "medium",
    check: (e, f, t) =>
      e.type === "login_failed" && (f.failuresSinceLogin ?? 0) >= t.failuresInARow
        ? `${f.failuresSinceLogin} failed logins in a row (>= ${t.failuresInARow})`
        : undefined,
  },
  {
    name: "high_value_purchase",
    severity: "medium",
    check: (e, _f, t) => {
      const amount = num(e.payload.amount) ?? 0;
      return e.type === "purchase" && amount > t.highValueAmount
        ? `purchase of ${amount} ${e.payload.currency} (> ${t.highValueAmount})`
        : undefined;
    },
  },
  {
    name: "rapid_successive_purchases",
    severity: "medium",
    check: (e, f, t) =>
      e.type === "purchase" && (f.purchasesLastHour ?? 0) >= t.purchasesPerHour
        ? `${f.purchasesLastHour} purchases in 1 h (>= ${t.purchasesPerHour})`
        : undefined,
  },
  {
    name: "high_api_failure_rate",
    severity: "medium",
    check: (e, f, t) =>
      isApiFailure(e) && (f.apiFailuresLastMinute ?? 0) >= t.apiFailuresPerMinute
        ? `${f.apiFailuresLastMinute} failed API calls in 1 min (>= ${t.apiFailuresPerMinute})`
        : undefined,
  },
  {
    name: "unusual_location_login",
    severity: "medium",
    check: (e, f) =>
      e.type === "login" && f.newCountryAfter && f.newCountryAfter.length > 0
        ? `login from ${e.payload.country}, new for this user (seen before: ${
          f.newCountryAfter.join(", ")
        })`
        : undefined,
  },
  {
    name: "unusual_time_activity",
    severity: "low",
    check: (e, f, t) => {
      if (f.activeDays === undefined || f.activeDays < t.unusualHourMinDays) return undefined;
      if ((f.activeDaysAtThisHour ?? 0) > 0) return undefined;
      const hour = new Date(e.occurred_at).getUTCHours();
      return `${e.type} at ${
        String(hour).padStart(2, "0")
      }:00 UTC, an hour this user was not active at on any of ${f.activeDays} days`;
    },
  },
];

/** Combines severities: independent evidence, so `1 - Π(1 - weight)`, rounded to 3 places. */
export function combine(rules: readonly FiredRule[]): number {
  let keep = 1;
  for (const r of rules) keep *= 1 - SEVERITY_WEIGHT[r.severity];
  return Math.round((1 - keep) * 1000) / 1000;
}

/** Runs every rule on one event. */
export function evaluate(event: Envelope, facts: Facts, t: Thresholds): RuleDecision {
  const rules: FiredRule[] = [];
  for (const rule of RULES) {
    const reason = rule.check(event, facts, t);
    if (reason !== undefined) rules.push({ name: rule.name, severity: rule.severity, reason });
  }
  const score = combine(rules);
  const decision = score >= t.blockScore ? "block" : score >= t.alertScore ? "review" : "allow";
  return { score, decision, rules };
}
