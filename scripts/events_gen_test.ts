import assert from "node:assert/strict";
import { FraudDetector, type ScoredEvent } from "../pipeline/fraud/detector.ts";
import { DEFAULT_THRESHOLDS } from "../pipeline/fraud/rules.ts";
import { MemoryWindowStore } from "../pipeline/fraud/windows.ts";
import { EVENT_TYPES } from "../shared/schemas.ts";
import { validateEvent, type ValidationOptions } from "../pipeline/validate.ts";
import {
  BOT_LOGINS,
  type ClientEvent,
  createScenario,
  EventFactory,
  prng,
  type ScenarioName,
  type ScenarioOptions,
  SCENARIOS,
} from "./events_gen.ts";

const START = Date.parse("2025-06-02T12:00:00Z");
const VALIDATION: ValidationOptions = {
  unknownTypes: "reject",
  maxPastMs: 30 * 86_400_000,
  maxFutureMs: 3_600_000,
};

/** `count` events of a scenario at `rate` events/s on a simulated clock, with sequential ids. */
function take(
  name: ScenarioName,
  count: number,
  rate: number,
  options: Partial<ScenarioOptions> = {},
): { events: ClientEvent[]; barriers: number[]; attack: Record<string, unknown> } {
  let t = START;
  let id = 0;
  const s = createScenario(name, {
    seed: 7,
    now: () => t,
    eventId: () => `00000000-0000-4000-8000-${String(++id).padStart(12, "0")}`,
    ...options,
  });
  const events: ClientEvent[] = [];
  const barriers: number[] = [];
  for (let i = 0; i < count; i++) {
    const g = s.next();
    if (g.barrier) barriers.push(i);
    events.push(g.event);
    t += 1000 / rate;
  }
  return { events, barriers, attack: s.attack };
}

/** Validates an event as the gateway does, received `delayMs` after it occurred. */
function validate(raw: ClientEvent, delayMs: number) {
  return validateEvent(raw, {
    receivedAtMs: Date.parse(raw.occurred_at) + delayMs,
    trustReceivedAt: false,
    source: "http",
    eventId: () => crypto.randomUUID(),
  }, VALIDATION);
}

/** Validates the events as the gateway does, then scores them with the real rules and windows. */
async function score(events: ClientEvent[]): Promise<ScoredEvent[]> {
  let now = START;
  const detector = new FraudDetector(new MemoryWindowStore({ now: () => now }), {
    thresholds: DEFAULT_THRESHOLDS,
    cooldownMs: 300_000,
  });
  const out: ScoredEvent[] = [];
  // In batches, as the lake loader hands them over.
  for (let i = 0; i < events.length; i += 100) {
    const valid = events.slice(i, i + 100).map((raw) => {
      now = Date.parse(raw.occurred_at) + 2000;
      const r = validate(raw, 2000);
      assert.ok(r.ok, `invalid ${raw.type}: ${JSON.stringify(!r.ok && r.issues)}`);
      return r.event;
    });
    out.push(...await detector.score(valid));
  }
  return out;
}

const fired = (s: ScoredEvent, rule: string) => s.decision.rules.some((r) => r.name === rule);
const alerting = (s: ScoredEvent) => s.decision.score >= DEFAULT_THRESHOLDS.alertScore;

Deno.test("EventFactory gives the same events for the same seed, of every type", () => {
  const build = (seed: number) => {
    const f = new EventFactory(prng(seed));
    const users = f.users(50);
    return Array.from({ length: 2000 }, () => {
      const type = f.type();
      return { type, payload: f.payload(type, f.pick(users)) };
    });
  };
  const a = build(42);
  assert.deepEqual(a, build(42));
  assert.notDeepEqual(a, build(43));
  assert.deepEqual(new Set(a.map((e) => e.type)), new Set(EVENT_TYPES));
});

Deno.test("createScenario() builds only events that pass validation, in every scenario", async (t) => {
  for (const name of SCENARIOS) {
    await t.step(name, () => {
      const { events } = take(name, 3000, 1000, { attackShare: 0.5 });
      for (const raw of events) {
        const r = validate(raw, 1000);
        assert.ok(r.ok, `${name}: invalid ${raw.type}: ${JSON.stringify(!r.ok && r.issues)}`);
        assert.equal(r.event.event_id, raw.event_id);
        assert.equal(r.event.source, `generate/${name}`);
      }
      assert.equal(new Set(events.map((e) => e.event_id)).size, events.length);
    });
  }
});

Deno.test("createScenario() gives the same contents for the same seed, new ids each run", () => {
  const strip = (events: ClientEvent[]) => events.map(({ event_id: _, ...rest }) => rest);
  const a = createScenario("bot-attack", { seed: 3, now: () => START });
  const b = createScenario("bot-attack", { seed: 3, now: () => START });
  const xs = Array.from({ length: 200 }, () => a.next().event);
  const ys = Array.from({ length: 200 }, () => b.next().event);
  assert.deepEqual(strip(xs), strip(ys));
  assert.notEqual(xs[0]!.event_id, ys[0]!.event_id);
  assert.deepEqual(a.attack, b.attack);
});

Deno.test("bot-attack: rapid logins then a purchase, which the rules flag as login_burst_then_purchase", async () => {
  const { events, barriers, attack } = take("bot-attack", 2000, 2000);
  const bot = attack.bot_user as string;
  assert.match(bot, /^bot-[0-9a-f]{6}$/);
  const mine = events.filter((e) => e.user_id === bot);
  // The seeds' flow: 15 logins, then the purchase, which waits for them (a barrier).
  assert.deepEqual(
    mine.slice(0, BOT_LOGINS + 1).map((e) => e.type),
    [...Array(BOT_LOGINS).fill("login"), "purchase"],
  );
  assert.ok(barriers.length > 0);
  for (const i of barriers) assert.equal(events[i]!.type, "purchase");
  assert.ok(Math.abs(mine.length / events.length - 0.2) < 0.05, "about a fifth are the bot's");

  const scored = await score(events);
  const purchases = scored.filter((s) => s.event.user_id === bot && s.event.type === "purchase");
  assert.ok(purchases.length >= 2);
  for (const p of purchases) {
    assert.ok(fired(p, "login_burst_then_purchase"), JSON.stringify(p.decision));
    assert.ok(alerting(p));
  }
  // The first purchase is the seeds' alert: that rule alone, critical.
  assert.deepEqual(purchases[0]!.decision.rules.map((r) => r.name), ["login_burst_then_purchase"]);
  assert.equal(purchases[0]!.decision.score, 0.9);
  // Nobody else comes near an alert.
  assert.deepEqual(scored.filter((s) => s.event.user_id !== bot && alerting(s)), []);
});

Deno.test("card-testing: small purchases with one card from many accounts trip card_velocity", async () => {
  const { events, attack } = take("card-testing", 2000, 2000);
  const card = attack.card_fingerprint as string;
  const tests = events.filter((e) => e.payload.card_fingerprint === card);
  assert.ok(new Set(tests.map((e) => e.user_id)).size >= 20, "across accounts");
  for (const e of tests) {
    assert.equal(e.type, "purchase");
    assert.ok((e.payload.amount as number) < 3);
  }
  const scored = await score(events);
  const flagged = scored.filter((s) => s.event.payload.card_fingerprint === card);
  // The fourth purchase with the card is still fine; from the fifth on, every one alerts.
  assert.ok(!fired(flagged[3]!, "card_velocity"));
  for (const s of flagged.slice(4)) {
    assert.ok(fired(s, "card_velocity") && alerting(s), JSON.stringify(s.decision));
  }
  assert.deepEqual(
    scored.filter((s) => s.event.payload.card_fingerprint !== card && alerting(s)),
    [],
  );
});

Deno.test("login-storm: failures against many accounts from a few IPs trip repeated_login_failures and ip_login_burst", async () => {
  const { events, attack } = take("login-storm", 4000, 2000);
  const ips = new Set(attack.ips as string[]);
  const storm = events.filter((e) => ips.has(e.payload.ip as string));
  const failed = storm.filter((e) => e.type === "login_failed").length;
  assert.ok(failed / storm.length > 0.7, "mostly failures");
  assert.ok(new Set(storm.map((e) => e.user_id)).size >= 150, "many accounts");

  const scored = await score(events);
  const byRule = (rule: string) => scored.filter((s) => fired(s, rule));
  const failures = byRule("repeated_login_failures");
  const bursts = byRule("ip_login_burst");
  assert.ok(failures.length > 50, `repeated_login_failures fired ${failures.length} times`);
  assert.ok(new Set(failures.map((s) => s.event.user_id)).size > 20);
  assert.ok(bursts.length > 0, "ip_login_burst never fired");
  for (const s of bursts) {
    assert.equal(s.event.payload.ip, attack.hot_ip);
    assert.ok(alerting(s));
  }
  for (const s of [...failures, ...bursts]) assert.ok(ips.has(s.event.payload.ip as string));
});

Deno.test("normal and burst traffic raise no alert with the default user pool at 2000 events/s", async (t) => {
  for (const name of ["normal", "burst"] as const) {
    await t.step(name, async () => {
      // 30 users per event/s, as `generate.ts` defaults: about 2 events a user a minute.
      const { events } = take(name, 20_000, 2000, { users: 60_000 });
      const scored = await score(events);
      assert.deepEqual(scored.filter(alerting).map((s) => s.decision.rules), []);
      const types = new Set(events.map((e) => e.type));
      assert.equal(types.size, EVENT_TYPES.length, "all 13 types");
    });
  }
});
