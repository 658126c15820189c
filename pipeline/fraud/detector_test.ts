// The fraud rules end to end through the detector and the in-memory window store. Time is the
// events' occurred_at, so every scenario is written with explicit times: no timers, no sleeping.
import assert from "node:assert/strict";
import type { Envelope } from "../../shared/schemas.ts";
import { alertIdOf, FraudDetector, type ScoredEvent } from "./detector.ts";
import { combine, DEFAULT_THRESHOLDS, evaluate } from "./rules.ts";
import { MemoryWindowStore, type WindowOp, type WindowStore } from "./windows.ts";

const T0 = Date.parse("2026-11-20T10:00:00.000Z");
const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

let seq = 0;
function ev(
  type: string,
  at: number,
  payload: Record<string, unknown> = {},
  user = "alice",
): Envelope {
  const iso = new Date(at).toISOString();
  return {
    event_id: `e-${++seq}`,
    type: type as Envelope["type"],
    event_type: type,
    user_id: user,
    occurred_at: iso,
    received_at: iso,
    source: "test",
    payload: type === "purchase" ? { currency: "USD", amount: 20, ...payload } : payload,
  };
}

function detector(
  store: WindowStore = new MemoryWindowStore({ now: () => T0 }),
  cooldownMs = 5 * MIN,
) {
  return new FraudDetector(store, { thresholds: DEFAULT_THRESHOLDS, cooldownMs });
}

const fired = (s: ScoredEvent) => s.decision.rules.map((r) => r.name);

/** Scores events one batch at a time (as separate log batches would arrive). */
async function scoreEach(d: FraudDetector, events: Envelope[]): Promise<ScoredEvent[]> {
  const out: ScoredEvent[] = [];
  for (const e of events) out.push(...await d.score([e]));
  return out;
}

Deno.test("bot attack: 15 rapid logins then a purchase is blocked with the burst rule", async () => {
  const d = detector();
  const logins = Array.from({ length: 15 }, (_, i) => ev("login", T0 + i * 2 * SEC));
  const buy = ev("purchase", T0 + 40 * SEC, { amount: 99 });
  const scored = await d.score([...logins, buy]);
  // The 11th login in a minute is the first over the threshold of 10.
  assert.deepEqual(fired(scored[9]!), []);
  assert.deepEqual(fired(scored[10]!), ["high_frequency_login"]);
  const last = scored.at(-1)!;
  assert.deepEqual(fired(last), ["login_burst_then_purchase"]);
  assert.equal(last.decision.decision, "block");
  assert.match(last.decision.rules[0]!.reason, /15 logins in 5 min/);
});

Deno.test("normal traffic: spread-out logins and small purchases fire no rule", async () => {
  const d = detector();
  const events: Envelope[] = [];
  for (let day = 0; day < 10; day++) {
    const base = T0 - (10 - day) * DAY;
    events.push(
      ev("login", base, { ip: "10.0.0.1", country: "DE" }),
      ev("page_view", base + MIN, { page: "/" }),
      ev("purchase", base + 2 * MIN, { amount: 35, card_fingerprint: "card-1" }),
      ev("api_call", base + 3 * MIN, { endpoint: "/x", status_code: 200 }),
      ev("logout", base + 4 * MIN),
    );
  }
  const scored = await scoreEach(d, events);
  assert.deepEqual(scored.filter((s) => s.decision.rules.length > 0).map(fired), []);
  assert.ok(scored.every((s) => s.decision.decision === "allow" && s.decision.score === 0));
  assert.deepEqual(await d.candidates(scored), []);
});

Deno.test("high_frequency_login counts a sliding minute, not a fixed bucket", async () => {
  const d = detector();
  // 12 logins 6 s apart: any minute holds at most 10 (or 11 at the exact edge, which is excluded).
  const scored = await scoreEach(
    d,
    Array.from({ length: 12 }, (_, i) => ev("login", T0 + i * 6100)),
  );
  assert.ok(scored.every((s) => !fired(s).includes("high_frequency_login")));
  // One more inside the last minute tips it over.
  const [extra] = await d.score([ev("login", T0 + 11 * 6100 + 100)]);
  assert.deepEqual(fired(extra!), ["high_frequency_login"]);
});

Deno.test("repeated_login_failures: 3 in a row, reset by a successful login", async () => {
  const d = detector();
  const at = (s: number) => T0 + s * SEC;
  const scored = await scoreEach(d, [
    ev("login_failed", at(1)),
    ev("login_failed", at(2)),
    ev("login", at(3)),
    ev("login_failed", at(4)),
    ev("login_failed", at(5)),
    ev("login_failed", at(6)),
  ]);
  assert.deepEqual(scored.map((s) => fired(s).includes("repeated_login_failures")), [
    false,
    false,
    false,
    false,
    false,
    true,
  ]);
  assert.match(scored[5]!.decision.rules[0]!.reason, /3 failed logins in a row/);
});

Deno.test("high_value_purchase is strictly above the threshold", async () => {
  const d = detector();
  const [at, over] = await d.score([
    ev("purchase", T0, { amount: 1000 }),
    ev("purchase", T0 + MIN, { amount: 1000.01 }),
  ]);
  assert.deepEqual(fired(at!), []);
  assert.deepEqual(fired(over!), ["high_value_purchase"]);
});

Deno.test("rapid_successive_purchases: the 5th purchase within an hour", async () => {
  const d = detector();
  const scored = await scoreEach(
    d,
    Array.from({ length: 6 }, (_, i) => ev("purchase", T0 + i * 10 * MIN)),
  );
  assert.deepEqual(scored.map((s) => fired(s).includes("rapid_successive_purchases")), [
    false,
    false,
    false,
    false,
    true,
    true,
  ]);
  // Two hours later the window has emptied.
  const [later] = await d.score([ev("purchase", T0 + 3 * HOUR)]);
  assert.deepEqual(fired(later!), []);
});

Deno.test("high_api_failure_rate counts 5xx/401/403/429 only", async () => {
  const d = detector();
  const call = (i: number, status: number) =>
    ev("api_call", T0 + i * SEC, { endpoint: "/v1/pay", status_code: status });
  const noise = await scoreEach(d, [call(0, 200), call(1, 404), call(2, 404), call(3, 302)]);
  assert.ok(noise.every((s) => fired(s).length === 0));
  const scored = await scoreEach(d, [
    call(4, 500),
    call(5, 503),
    call(6, 401),
    call(7, 429),
    call(8, 403),
  ]);
  assert.deepEqual(scored.map((s) => fired(s).includes("high_api_failure_rate")), [
    false,
    false,
    false,
    false,
    true,
  ]);
});

Deno.test("unusual_location_login: a country new for the user, after history", async () => {
  const d = detector();
  const scored = await scoreEach(d, [
    ev("login", T0, { country: "DE" }), // the first country is not "new"
    ev("login", T0 + HOUR, { country: "DE" }),
    ev("login", T0 + 2 * HOUR, { country: "BR" }),
    ev("login", T0 + 3 * HOUR, { country: "BR" }), // seen now
  ]);
  assert.deepEqual(scored.map((s) => fired(s).includes("unusual_location_login")), [
    false,
    false,
    true,
    false,
  ]);
  assert.match(scored[2]!.decision.rules[0]!.reason, /login from BR, new .*seen before: DE/);
});

Deno.test("unusual_time_activity: an hour the user was never active at, with enough history", async () => {
  const d = detector();
  // Active around 10:00 UTC on 8 days.
  const history = Array.from({ length: 8 }, (_, i) => ev("login", T0 - (i + 1) * DAY));
  await scoreEach(d, history);
  const [night, usual, near] = await scoreEach(d, [
    ev("login", T0 + 17 * HOUR), // 03:00 the next day
    ev("login", T0 + 24 * HOUR), // 10:00
    ev("purchase", T0 + 24 * HOUR + 50 * MIN), // 10:50, within the hour
  ]);
  assert.deepEqual(fired(night!), ["unusual_time_activity"]);
  assert.match(night!.decision.rules[0]!.reason, /at 03:00 UTC.*8 days/);
  assert.deepEqual(fired(usual!), []);
  assert.deepEqual(fired(near!), []);

  // A new user has no history: the rule stays quiet.
  const [fresh] = await d.score([ev("login", T0 + 17 * HOUR, {}, "bob")]);
  assert.deepEqual(fired(fresh!), []);
});

Deno.test("ip_login_burst and card_velocity look across users", async () => {
  const d = detector();
  const logins = Array.from(
    { length: 31 },
    (_, i) => ev("login", T0 + i * SEC, { ip: "203.0.113.9" }, `user-${i}`),
  );
  const scored = await d.score(logins);
  assert.deepEqual(fired(scored[29]!), []);
  assert.deepEqual(fired(scored[30]!), ["ip_login_burst"]);

  const buys = Array.from(
    { length: 5 },
    (_, i) => ev("purchase", T0 + i * MIN, { card_fingerprint: "fp-1" }, `buyer-${i}`),
  );
  const cards = await d.score(buys);
  assert.deepEqual(fired(cards[3]!), []);
  assert.deepEqual(fired(cards[4]!), ["card_velocity"]);
});

Deno.test("scoring the same events again (retry, re-delivery) does not change any count", async () => {
  const d = detector();
  const logins = Array.from({ length: 8 }, (_, i) => ev("login", T0 + i * SEC));
  const first = await d.score(logins);
  const again = await d.score(logins);
  const third = await d.score(logins);
  assert.deepEqual(again.map(fired), first.map(fired));
  assert.deepEqual(third.map((s) => s.decision), first.map((s) => s.decision));
  // 8 distinct logins, whatever the number of deliveries: 3 more are needed to pass 10.
  const more = await d.score([1, 2, 3].map((i) => ev("login", T0 + (8 + i) * SEC)));
  assert.deepEqual(more.map(fired), [[], [], ["high_frequency_login"]]);
});

Deno.test("one window round trip per batch; a second only for flagged events", async () => {
  const runs: number[] = [];
  const inner = new MemoryWindowStore({ now: () => T0 });
  const counting: WindowStore = {
    kind: "counting",
    run: (ops: readonly WindowOp[]) => (runs.push(ops.length), inner.run(ops)),
    ping: () => inner.ping(),
    close: () => inner.close(),
  };
  const d = detector(counting);
  const batch = [
    ...Array.from({ length: 15 }, (_, i) => ev("login", T0 + i * SEC)),
    ev("purchase", T0 + 20 * SEC),
  ];
  const scored = await d.score(batch);
  assert.equal(runs.length, 1);
  await d.candidates(scored);
  assert.equal(runs.length, 2);
  assert.equal(d.stats.roundTrips, 2);
});

Deno.test("alert candidates: one per user per cooldown; a replay gets the same alert id", async () => {
  let now = T0;
  const d = detector(new MemoryWindowStore({ now: () => now }), 5 * MIN);
  const logins = Array.from({ length: 15 }, (_, i) => ev("login", T0 + i * SEC));
  const buy = ev("purchase", T0 + 20 * SEC);
  const scored = await d.score([...logins, buy]);
  const candidates = await d.candidates(scored);
  // Logins 11..15 fire high_frequency_login (medium, no alert); the purchase is the alert.
  assert.equal(candidates.length, 1);
  assert.equal(candidates[0]!.alertId, alertIdOf(buy));
  const window = candidates[0]!.window;
  assert.equal(window.length, 16, "the window holds the user's events up to the trigger");
  assert.deepEqual(window.map((w) => w.event_id), [...logins, buy].map((e) => e.event_id));

  // A second flagged event of the user within the cooldown is suppressed.
  const [again] = await d.score([ev("purchase", T0 + 30 * SEC)]);
  assert.equal(again!.decision.decision, "block");
  assert.deepEqual(await d.candidates([again!]), []);
  assert.equal(d.stats.suppressed, 1);

  // The same flagged event again (crash and re-delivery) raises the same alert again.
  const replay = await d.candidates([scored.at(-1)!]);
  assert.equal(replay.length, 1);
  assert.equal(replay[0]!.alertId, candidates[0]!.alertId);

  // After the cooldown a new flagged event raises a new alert.
  now = T0 + 6 * MIN;
  const later = await d.score([ev("purchase", T0 + 6 * MIN, { amount: 5000 })]);
  const more = await d.candidates([{
    ...later[0]!,
    decision: { ...later[0]!.decision, score: 0.95 },
  }]);
  assert.equal(more.length, 1);
  assert.notEqual(more[0]!.alertId, candidates[0]!.alertId);
});

Deno.test("without the window store, stateless rules still score and the reason is given", async () => {
  const broken: WindowStore = {
    kind: "broken",
    run: () => Promise.reject(new Error("connection refused")),
    ping: () => Promise.reject(new Error("connection refused")),
    close: () => Promise.resolve(),
  };
  const d = detector(broken);
  const [big, login] = await d.score([
    ev("purchase", T0, { amount: 50_000 }),
    ev("login", T0 + SEC),
  ]);
  assert.deepEqual(fired(big!), ["high_value_purchase"]);
  assert.match(big!.degraded!, /window store unavailable: connection refused/);
  assert.deepEqual(fired(login!), []);
  assert.equal(d.stats.windowErrors, 1);
  // A flagged event still becomes an alert, without cooldown, saying why.
  const flagged = { ...big!, decision: evaluate(big!.event, {}, { ...DEFAULT_THRESHOLDS }) };
  flagged.decision.score = 0.8;
  const candidates = await d.candidates([flagged]);
  assert.equal(candidates.length, 1);
  assert.match(candidates[0]!.degraded!, /window store unavailable/);
});

Deno.test("rule score combines severities as independent evidence", () => {
  const r = (severity: "low" | "medium" | "high") => ({ name: severity, severity, reason: "" });
  assert.equal(combine([]), 0);
  // One medium rule alone is not an alert (0.7) …
  assert.equal(combine([r("medium")]), 0.5);
  assert.equal(combine([r("low"), r("medium")]), 0.6);
  // … two independent medium rules are, and a high one is on its own.
  assert.equal(combine([r("medium"), r("medium")]), 0.75);
  assert.equal(combine([r("high")]), 0.7);
  assert.equal(combine([r("medium"), r("high")]), 0.85);
});
