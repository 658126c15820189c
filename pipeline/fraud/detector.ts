/**
 * The fraud detector: turns a batch of validated events into window operations (one round trip to
 * the window store for the whole batch), reads back the counts the rules need, and scores every
 * event with the rules. For events the rules flag it claims the user's alert cooldown and reads the
 * user's recent events (a second round trip, for flagged events only).
 *
 * Window keys are per user, per IP and per card fingerprint; ids are URI-encoded so no user string
 * can run into another key. Every member is an event id or another deterministic string, so scoring
 * the same event twice (a retry, a re-delivery, `POST /score` then ingest) counts it once.
 *
 * @module
 */
import type { Metrics } from "../../shared/metrics.ts";
import type { Envelope } from "../../shared/schemas.ts";
import { nameUuid } from "../../shared/ids.ts";
import { evaluate, type Facts, isApiFailure, type RuleDecision, type Thresholds } from "./rules.ts";
import type { Scored, WindowOp, WindowResult, WindowStore } from "./windows.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Recent events kept per user for the LLM. */
export const RECENT_EVENTS = 50;

/** One event of a user's recent window, as alerts and the LLM see it. */
export interface WindowEvent {
  event_id: string;
  type: string;
  at: string;
  details: Record<string, string | number | boolean>;
}

/** An event with its rule decision. */
export interface ScoredEvent {
  event: Envelope;
  decision: RuleDecision;
  /** Why the windows could not be read, when they could not (stateless rules still ran). */
  degraded?: string;
}

/** A flagged event whose user is not in cooldown: an alert to raise. */
export interface AlertCandidate {
  alertId: string;
  scored: ScoredEvent;
  /** The user's recent events, oldest first (at most {@link RECENT_EVENTS}). */
  window: WindowEvent[];
  degraded?: string;
}

/** Options of {@link FraudDetector}. */
export interface DetectorOptions {
  thresholds: Thresholds;
  /** No second alert for a user within this long. */
  cooldownMs: number;
  /** Events per window round trip; a larger batch is split. */
  maxBatch?: number;
  /** Counts events scored without their windows (`streamgate_fraud_scoring_degraded_total`). */
  metrics?: Metrics;
  /**
   * Called when the window store stops answering (with the reason) and when it answers again
   * (`undefined`): once per change, so a log line does not repeat for every batch.
   */
  onStoreChange?: (down: string | undefined) => void;
}

/** Counters, for metrics. */
export interface DetectorStats {
  scored: number;
  flagged: number;
  suppressed: number;
  roundTrips: number;
  windowErrors: number;
  lastRoundTripMs: number;
}

const DETAIL_FIELDS = [
  "ip",
  "country",
  "device_id",
  "amount",
  "currency",
  "payment_method",
  "status_code",
  "endpoint",
  "method",
  "reason",
  "page",
] as const;

/** The part of an event the window keeps: scalar fields that matter for fraud, strings cut short. */
export function summarize(event: Envelope): WindowEvent {
  const details: Record<string, string | number | boolean> = {};
  for (const f of DETAIL_FIELDS) {
    const v = event.payload[f];
    if (typeof v === "string") details[f] = v.slice(0, 100);
    else if (typeof v === "number" || typeof v === "boolean") details[f] = v;
  }
  return { event_id: event.event_id, type: event.event_type, at: event.occurred_at, details };
}

const key = (scope: "u" | "ip" | "card", id: string, what: string) =>
  `sg:${scope}:${encodeURIComponent(id)}:${what}`;

/** The day and hour slot of a time: the unit of "active at this hour" history. */
const slotOf = (t: number) => `${Math.floor(t / DAY)}:${new Date(t).getUTCHours()}`;

type Read = (results: readonly WindowResult[], facts: Facts) => void;

/** Builds the ops of one event and the reads that turn their results into facts. */
function plan(e: Envelope, t: Thresholds, ops: WindowOp[], reads: Read[]): void {
  const at = Date.parse(e.occurred_at);
  // Each key is built once per event: the store hashes a string the first time it looks it up, so
  // the second op on the same key finds the hash already there.
  const user = `sg:u:${encodeURIComponent(e.user_id)}:`;
  const u = (what: string) => user + what;
  const hours = u("hours");
  const push = (op: WindowOp, read?: (r: WindowResult, facts: Facts) => void) => {
    const i = ops.push(op) - 1;
    if (read) reads.push((results, facts) => read(results[i]!, facts));
  };
  const count = (k: string, windowMs: number, set: (facts: Facts, n: number) => void) =>
    push({ op: "zcount", key: k, min: at - windowMs, max: at }, (r, f) => set(f, r as number));
  const add = (k: string, windowMs: number, keep: number, ttlMs = windowMs * 2) =>
    push({
      op: "zadd",
      key: k,
      member: e.event_id,
      score: at,
      ttlMs,
      keep,
      minScore: at - windowMs,
    });

  planHistory(e, at, push, u("recent"), hours);
  const { ip, country, card_fingerprint: card } = e.payload;
  switch (e.type) {
    case "login": {
      const logins = u("logins");
      add(logins, HOUR, 2000);
      count(logins, MINUTE, (f, n) => f.loginsLastMinute = n);
      if (typeof ip === "string") {
        const ipLogins = key("ip", ip, "logins");
        add(ipLogins, MINUTE, 10_000, 10 * MINUTE);
        count(ipLogins, MINUTE, (f, n) => f.ipLoginsLastMinute = n);
      }
      if (typeof country === "string") planCountry(at, u("countries"), country, push);
      planHours(at, hours, push);
      break;
    }
    case "login_failed": {
      const failsKey = u("fails");
      add(failsKey, HOUR, 100);
      let fails: Scored[] = [];
      push(
        { op: "zrange", key: failsKey, min: at - HOUR, max: at, limit: 2 * t.failuresInARow },
        (r) => fails = r as Scored[],
      );
      push({ op: "zlast", key: u("logins"), max: at }, (r, f) => {
        const last = (r as number | null) ?? -Infinity;
        f.failuresSinceLogin = fails.filter((s) => s.score > last).length;
      });
      break;
    }
    case "purchase": {
      const purchases = u("purchases");
      add(purchases, HOUR, 1000);
      count(purchases, HOUR, (f, n) => f.purchasesLastHour = n);
      count(u("logins"), t.burstWindowMs, (f, n) => f.loginsInBurstWindow = n);
      if (typeof card === "string") {
        const cardPurchases = key("card", card, "purchases");
        add(cardPurchases, HOUR, 1000);
        count(cardPurchases, HOUR, (f, n) => f.cardPurchasesLastHour = n);
      }
      planHours(at, hours, push);
      break;
    }
    case "api_call": {
      if (isApiFailure(e)) {
        const failures = u("api_failures");
        add(failures, MINUTE, 1000, 10 * MINUTE);
        count(failures, MINUTE, (f, n) => f.apiFailuresLastMinute = n);
      }
      break;
    }
  }
}

type Push = (op: WindowOp, read?: (r: WindowResult, facts: Facts) => void) => void;

/** Every event joins the user's recent window (for alerts) and the hours the user is active at. */
function planHistory(e: Envelope, at: number, push: Push, recent: string, hours: string): void {
  push({
    op: "zadd",
    key: recent,
    member: JSON.stringify(summarize(e)),
    score: at,
    ttlMs: HOUR,
    keep: RECENT_EVENTS,
    minScore: at - HOUR,
  });
  push({
    op: "zadd",
    key: hours,
    member: slotOf(at),
    score: at,
    ttlMs: 31 * DAY,
    nx: true,
    minScore: at - 30 * DAY,
  });
}

/** Countries keep their first-seen time; a login's country is new if first seen with it. */
function planCountry(at: number, k: string, country: string, push: Push): void {
  push({ op: "zadd", key: k, member: country, score: at, ttlMs: 90 * DAY, nx: true, keep: 100 });
  push({ op: "zrange", key: k, min: at - 90 * DAY, max: at, limit: 100 }, (r, f) => {
    const seen = r as Scored[];
    const own = seen.find((s) => s.member === country);
    const before = seen.filter((s) => s.member !== country && s.score < at).map((s) => s.member);
    // Absent from the range means it was first seen after this (late) event: not new now.
    if (own && own.score >= at && before.length > 0) f.newCountryAfter = before.sort();
  });
}

/** Distinct active days in the last 30 days, and those with activity within an hour of now. */
function planHours(at: number, k: string, push: Push): void {
  push({ op: "zrange", key: k, min: at - 30 * DAY, max: at, limit: 800 }, (r, f) => {
    const today = Math.floor(at / DAY);
    const hour = new Date(at).getUTCHours();
    const days = new Set<number>();
    const daysAtHour = new Set<number>();
    for (const { member } of r as Scored[]) {
      const [d, h] = member.split(":").map(Number) as [number, number];
      if (d === today) continue; // today's own activity is not history
      days.add(d);
      const dist = Math.min(Math.abs(h - hour), 24 - Math.abs(h - hour));
      if (dist <= 1) daysAtHour.add(d);
    }
    f.activeDays = days.size;
    f.activeDaysAtThisHour = daysAtHour.size;
  });
}

/** Deterministic alert id: the same flagged event always raises the same alert. */
export const alertIdOf = (e: Envelope) => nameUuid(`alert/${e.user_id}/${e.event_id}`);

/** Scores batches of events against the window store. */
export class FraudDetector {
  readonly #store: WindowStore;
  readonly #opts: Required<Omit<DetectorOptions, "metrics" | "onStoreChange">>;
  readonly #metrics: Metrics | undefined;
  readonly #onStoreChange: ((down: string | undefined) => void) | undefined;
  #storeDown = false;
  readonly stats: DetectorStats = {
    scored: 0,
    flagged: 0,
    suppressed: 0,
    roundTrips: 0,
    windowErrors: 0,
    lastRoundTripMs: 0,
  };

  constructor(store: WindowStore, options: DetectorOptions) {
    this.#store = store;
    const { metrics, onStoreChange, ...opts } = options;
    this.#opts = { maxBatch: 1000, ...opts };
    this.#metrics = metrics;
    this.#onStoreChange = onStoreChange;
  }

  get thresholds(): Thresholds {
    return this.#opts.thresholds;
  }

  /** Records the events in the windows and scores each; never rejects (degrades instead). */
  async score(events: readonly Envelope[]): Promise<ScoredEvent[]> {
    const out: ScoredEvent[] = [];
    for (let i = 0; i < events.length; i += this.#opts.maxBatch) {
      out.push(...await this.#scoreChunk(events.slice(i, i + this.#opts.maxBatch)));
    }
    this.stats.scored += out.length;
    return out;
  }

  async #scoreChunk(events: readonly Envelope[]): Promise<ScoredEvent[]> {
    const ops: WindowOp[] = [];
    const perEvent: Read[][] = [];
    for (const e of events) {
      const reads: Read[] = [];
      plan(e, this.#opts.thresholds, ops, reads);
      perEvent.push(reads);
    }
    const { results, degraded } = await this.#tryRun(ops);
    if (degraded) this.#metrics?.fraudScoringDegraded(events.length);
    return events.map((event, i) => {
      const facts: Facts = {};
      if (results) { for (const read of perEvent[i]!) read(results, facts); }
      const decision = evaluate(event, facts, this.#opts.thresholds);
      return degraded ? { event, decision, degraded } : { event, decision };
    });
  }

  /** {@link #run}, or why the window store could not answer (scoring then degrades). */
  async #tryRun(ops: WindowOp[]): Promise<{ results?: WindowResult[]; degraded?: string }> {
    try {
      return { results: await this.#run(ops) };
    } catch (err) {
      return { degraded: `window store unavailable: ${(err as Error).message}` };
    }
  }

  async #run(ops: WindowOp[]): Promise<WindowResult[]> {
    const t0 = performance.now();
    try {
      const results = await this.#store.run(ops);
      this.stats.roundTrips++;
      this.stats.lastRoundTripMs = performance.now() - t0;
      if (this.#storeDown) {
        this.#storeDown = false;
        this.#onStoreChange?.(undefined);
      }
      return results;
    } catch (err) {
      this.stats.windowErrors++;
      if (!this.#storeDown) {
        this.#storeDown = true;
        this.#onStoreChange?.(`window store unavailable: ${(err as Error).message}`);
      }
      throw err;
    }
  }

  /**
   * The alerts to raise for scored events: flagged ones whose user's cooldown this event can claim
   * (or already holds, on a replay), with the user's recent events. One round trip for all.
   */
  async candidates(scored: readonly ScoredEvent[]): Promise<AlertCandidate[]> {
    const flagged = scored.filter((s) => s.decision.score >= this.#opts.thresholds.alertScore);
    if (flagged.length === 0) return [];
    this.stats.flagged += flagged.length;
    const ops: WindowOp[] = [];
    for (const { event } of flagged) {
      const at = Date.parse(event.occurred_at);
      ops.push(
        {
          op: "claim",
          key: key("u", event.user_id, "alert"),
          value: alertIdOf(event),
          ttlMs: this.#opts.cooldownMs,
        },
        {
          op: "zrange",
          key: key("u", event.user_id, "recent"),
          min: at - HOUR,
          max: at,
          limit: 50,
        },
      );
    }
    const { results, degraded } = await this.#tryRun(ops);
    const out: AlertCandidate[] = [];
    flagged.forEach((s, i) => {
      const alertId = alertIdOf(s.event);
      if (!results) {
        // Without the store there is no cooldown: raise it, with the one event we know.
        out.push({ alertId, scored: s, window: [summarize(s.event)], degraded: degraded! });
        return;
      }
      if (results[2 * i] !== alertId) {
        this.stats.suppressed++;
        return;
      }
      const window = (results[2 * i + 1] as Scored[]).flatMap((m) => {
        try {
          return [JSON.parse(m.member) as WindowEvent];
        } catch {
          return [];
        }
      });
      const why = s.degraded ?? degraded;
      out.push(
        why ? { alertId, scored: s, window, degraded: why } : { alertId, scored: s, window },
      );
    });
    return out;
  }
}
