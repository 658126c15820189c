/**
 * Building realistic events, shared by `scripts/gen_lake.ts` (events written straight into the
 * lake) and `scripts/generate.ts` (traffic sent to a running gateway): a seeded PRNG, the event
 * mix and payloads of all 13 types ({@link EventFactory}), and the traffic scenarios
 * ({@link createScenario}): normal traffic and the attacks the fraud rules of
 * `pipeline/fraud/rules.ts` are there to catch.
 *
 * Payloads match `pipeline/schemas.ts`. Everything random is drawn from one PRNG in a fixed order,
 * so the same seed gives the same events (event ids and times aside, in scenarios).
 *
 * @module
 */
import type { EventType } from "../shared/schemas.ts";

/** A small, fast, seedable PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Relative frequency of each type: page views and clicks dominate, purchases are a few percent. */
export const MIX: readonly (readonly [EventType, number])[] = [
  ["page_view", 24],
  ["click", 20],
  ["api_call", 12],
  ["login", 8],
  ["logout", 5],
  ["login_failed", 2],
  ["add_to_cart", 6],
  ["purchase", 4],
  ["refund", 0.5],
  ["file_access", 5],
  ["radio_play", 4.5],
  ["tv_play", 4.5],
  ["sale", 4.5],
];
export const COUNTRIES = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL", "SE", "BR", "IN", "JP"];
const PAGES = ["/", "/search", "/cart", "/checkout", "/account", "/help", "/product/1", "/blog"];
const ENDPOINTS = ["/v1/items", "/v1/orders", "/v1/users/me", "/v1/search", "/v1/auth"];
const STATUS = [200, 200, 200, 200, 201, 204, 400, 401, 403, 404, 429, 500, 503];

/** A simulated user: a home country, a few IPs and devices. */
export interface SimUser {
  id: string;
  country: string;
  ips: string[];
  devices: string[];
}

/** The pieces of realistic events, drawn from one PRNG. */
export class EventFactory {
  /** The PRNG: uniform in [0, 1). */
  readonly rnd: () => number;
  readonly #cumulative: [EventType, number][] = [];

  constructor(rnd: () => number) {
    this.rnd = rnd;
    const total = MIX.reduce((a, [, w]) => a + w, 0);
    let acc = 0;
    for (const [t, w] of MIX) this.#cumulative.push([t, (acc += w) / total]);
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rnd() * xs.length)]!;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.rnd() * (hi - lo + 1));
  }

  /** `n` lower-case hex digits. */
  hex(n: number): string {
    let s = "";
    for (let i = 0; i < n; i++) s += Math.floor(this.rnd() * 16).toString(16);
    return s;
  }

  /** A version-4-shaped UUID from the PRNG: reproducible, unlike `crypto.randomUUID()`. */
  uuid(): string {
    return `${this.hex(8)}-${this.hex(4)}-4${this.hex(3)}-${"89ab"[Math.floor(this.rnd() * 4)]}${
      this.hex(3)
    }-${this.hex(12)}`;
  }

  /** Users `u-00000` … with a home country, 1–3 private IPs and 1–3 devices each. */
  users(n: number): SimUser[] {
    return Array.from({ length: n }, (_, i) => ({
      id: `u-${String(i).padStart(5, "0")}`,
      country: this.pick(COUNTRIES),
      ips: Array.from(
        { length: this.int(1, 3) },
        () => `10.${this.int(0, 255)}.${this.int(0, 255)}.${this.int(1, 254)}`,
      ),
      devices: Array.from({ length: this.int(1, 3) }, () => `dev-${this.hex(8)}`),
    }));
  }

  /** A type drawn from {@link MIX}. */
  type(): EventType {
    const r = this.rnd();
    for (const [t, c] of this.#cumulative) if (r < c) return t;
    return "page_view";
  }

  /** Where a user acts from: one of their IPs and devices, mostly their home country. */
  origin(u: SimUser): Record<string, unknown> {
    const o: Record<string, unknown> = {
      ip: this.pick(u.ips),
      country: this.rnd() < 0.97 ? u.country : this.pick(COUNTRIES),
      device_id: this.pick(u.devices),
      session_id: `s-${this.hex(10)}`,
    };
    if (this.rnd() < 0.3) o.user_agent = "Mozilla/5.0 (X11; Linux x86_64)";
    return o;
  }

  /** A payload of the type's schema, for an ordinary user. */
  payload(type: EventType, u: SimUser): Record<string, unknown> {
    switch (type) {
      case "login":
        return { ...this.origin(u), method: this.pick(["password", "sso", "otp", "token"]) };
      case "logout":
        return this.origin(u);
      case "login_failed":
        return { ...this.origin(u), reason: this.pick(["bad_password", "locked", "unknown_user"]) };
      case "purchase":
        return {
          ...this.origin(u),
          order_id: `o-${this.hex(10)}`,
          amount: Math.round((5 + this.rnd() * this.rnd() * 600) * 100) / 100,
          currency: this.rnd() < 0.8 ? "USD" : "EUR",
          items: this.int(1, 6),
          payment_method: this.pick(["card", "card", "paypal", "wallet", "bank_transfer"]),
          card_fingerprint: `card-${u.id}-${this.int(1, 2)}`,
        };
      case "add_to_cart":
        return {
          ...this.origin(u),
          product_id: `p-${this.int(1, 5000)}`,
          quantity: this.int(1, 4),
          price: Math.round(this.rnd() * 20000) / 100,
        };
      case "refund":
        return {
          ...this.origin(u),
          order_id: `o-${this.hex(10)}`,
          amount: Math.round(this.rnd() * 30000) / 100,
          currency: "USD",
          reason: this.pick(["damaged", "late", "changed_mind"]),
        };
      case "click":
        return {
          ...this.origin(u),
          element: this.pick(["buy", "nav", "logo", "banner"]),
          page: this.pick(PAGES),
        };
      case "page_view": {
        const p: Record<string, unknown> = { ...this.origin(u), page: this.pick(PAGES) };
        if (this.rnd() < 0.5) {
          p.referrer = this.pick(["https://search.example/", "https://news.example/"]);
        }
        p.duration_ms = this.int(200, 120000);
        return p;
      }
      case "api_call":
        return {
          ...this.origin(u),
          endpoint: this.pick(ENDPOINTS),
          method: this.pick(["GET", "GET", "POST", "PUT", "DELETE"]),
          status_code: this.pick(STATUS),
          latency_ms: Math.round(this.rnd() * 80000) / 100,
        };
      case "file_access":
        return {
          ...this.origin(u),
          path: `/home/${u.id}/${this.pick(["a.txt", "b.pdf", "c.png"])}`,
          action: this.pick(["read", "read", "write", "delete", "share"]),
          bytes: this.int(100, 50_000_000),
        };
      case "radio_play":
        return {
          ...this.origin(u),
          station_id: `st-${this.int(1, 40)}`,
          duration_s: this.int(10, 7200),
        };
      case "tv_play":
        return {
          ...this.origin(u),
          channel_id: `ch-${this.int(1, 60)}`,
          program_id: `pg-${this.int(1, 900)}`,
          duration_s: Math.round(this.rnd() * 1e6) / 100,
        };
      case "sale": {
        const quantity = this.int(1, 5), unit = Math.round((1 + this.rnd() * 99) * 100) / 100;
        return {
          sale_id: `sale-${this.hex(10)}`,
          store_id: `store-${this.int(1, 120)}`,
          product_id: `p-${this.int(1, 5000)}`,
          quantity,
          unit_price: unit,
          amount: Math.round(quantity * unit * 100) / 100,
          currency: "USD",
        };
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios: streams of events as a client sends them to `POST /events` or the events topic.

/** Every scenario, in the order the usage lists them. */
export const SCENARIOS = ["normal", "bot-attack", "card-testing", "login-storm", "burst"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** One event as a client sends it (see `IncomingEnvelope` in `pipeline/schemas.ts`). */
export interface ClientEvent {
  /** Set by the client, so a retried request cannot store the event twice under two ids. */
  event_id: string;
  type: EventType;
  user_id: string;
  occurred_at: string;
  source: string;
  payload: Record<string, unknown>;
}

/** One generated event. */
export interface GeneratedEvent {
  event: ClientEvent;
  /**
   * Send only after everything sent before it is acknowledged. The gateway scores events in log
   * order; a bot's purchase must not overtake its logins in another concurrent request, or the
   * burst rule would count fewer logins than there were.
   */
  barrier: boolean;
}

/** Options of {@link createScenario}. */
export interface ScenarioOptions {
  /** Seed of everything random but event ids and times. */
  seed: number;
  /** Ordinary users of the background traffic. @default 10000 */
  users?: number;
  /** Share of attack events in the attack scenarios, the rest being normal traffic. @default 0.2 */
  attackShare?: number;
  /** The clock that stamps `occurred_at`, in ms since the epoch. @default Date.now */
  now?: () => number;
  /** Event ids. @default crypto.randomUUID */
  eventId?: () => string;
}

/** A stream of events. */
export interface Scenario {
  readonly name: ScenarioName;
  /** Who attacks, for reports and checks: the bot user, the tested card, the storm's IPs. */
  readonly attack: Record<string, unknown>;
  next(): GeneratedEvent;
}

/** Logins per bot round: the seeds' bot attack logs in 15 times, then buys. */
export const BOT_LOGINS = 15;
/** Mule accounts that share the tested card. */
const CARD_MULES = 40;
/** Accounts the login storm goes after, and the IPs it comes from. */
const STORM_VICTIMS = 200;
const STORM_IPS = 16;
/** Share of the storm's attempts that guess right. */
const STORM_SUCCESS = 0.2;
const BOT_UA = "Mozilla/5.0 (compatible; HeadlessChrome/120.0)";
const STUFFING_UA = "python-requests/2.31.0";

/** An attack event before it gets an id and a time. */
interface Move {
  type: EventType;
  user_id: string;
  payload: Record<string, unknown>;
  barrier?: boolean;
}

/**
 * The scenario's event stream. `normal` and `burst` are ordinary traffic of all 13 types (a burst
 * differs only in its rate, which the sender shapes); the attack scenarios interleave the attack,
 * `attackShare` of the events, with ordinary traffic:
 *
 * - `bot-attack`: one bot user logs in {@link BOT_LOGINS} times in a row, then buys (a barrier
 *   event), round after round → `login_burst_then_purchase` on the purchase.
 * - `card-testing`: small purchases with one card fingerprint from many mule accounts →
 *   `card_velocity` from the fifth purchase on.
 * - `login-storm`: credential stuffing, mostly `login_failed` and some successful logins against a
 *   few hundred accounts from a handful of IPs (one hot proxy carrying most of it) →
 *   `repeated_login_failures`, and `ip_login_burst` once an IP has more than 30 logins a minute.
 */
export function createScenario(name: ScenarioName, options: ScenarioOptions): Scenario {
  const f = new EventFactory(prng(options.seed));
  const now = options.now ?? Date.now;
  const eventId = options.eventId ?? (() => crypto.randomUUID());
  const share = options.attackShare ?? 0.2;
  const source = `generate/${name}`;
  const users = f.users(options.users ?? 10_000);
  // Attackers are named after the seed, so a run's bot is told apart from another run's.
  const tag = f.hex(6);

  const stamp = (type: EventType, user_id: string, payload: Record<string, unknown>, at: number) =>
    ({
      event_id: eventId(),
      type,
      user_id,
      occurred_at: new Date(at).toISOString(),
      source,
      payload,
    }) satisfies ClientEvent;
  const ordinary = (): GeneratedEvent => {
    const u = f.pick(users);
    const type = f.type();
    // Clients batch: an event occurred up to two seconds before it is sent.
    return { event: stamp(type, u.id, f.payload(type, u), now() - f.int(0, 2000)), barrier: false };
  };

  let moves: Iterator<Move> | undefined;
  let attack: Record<string, unknown> = {};
  switch (name) {
    case "bot-attack": {
      const user = `bot-${tag}`;
      attack = { bot_user: user, logins_per_round: BOT_LOGINS };
      moves = botAttack(f, user, tag);
      break;
    }
    case "card-testing": {
      const card = `card-test-${tag}`;
      attack = { card_fingerprint: card, mules: CARD_MULES };
      moves = cardTesting(f, card, tag);
      break;
    }
    case "login-storm": {
      const ips = Array.from(
        { length: STORM_IPS },
        () => `198.18.${f.int(0, 255)}.${f.int(1, 254)}`,
      );
      const victims = Array.from(
        { length: Math.min(STORM_VICTIMS, users.length) },
        (_, i) => users[(i * 7919) % users.length]!.id,
      );
      attack = { ips, victims: victims.length, hot_ip: ips[0] };
      moves = loginStorm(f, ips, victims);
      break;
    }
  }

  // Attack events never go back in time, so a purchase is never stamped before the bot's logins.
  let last = -Infinity;
  return {
    name,
    attack,
    next(): GeneratedEvent {
      if (!moves || (share < 1 && f.rnd() >= share)) return ordinary();
      const m = moves.next().value as Move;
      last = Math.max(now(), last);
      return { event: stamp(m.type, m.user_id, m.payload, last), barrier: m.barrier === true };
    },
  };
}

function* botAttack(f: EventFactory, user: string, tag: string): Generator<Move, never> {
  const device = `dev-${f.hex(8)}`;
  for (let round = 0;; round++) {
    // A fresh exit IP per round, from the documentation range: never a real user's.
    const ip = `203.0.113.${f.int(1, 254)}`;
    const origin = { ip, device_id: device, user_agent: BOT_UA };
    for (let i = 0; i < BOT_LOGINS; i++) {
      yield { type: "login", user_id: user, payload: { ...origin, method: "password" } };
    }
    yield {
      type: "purchase",
      user_id: user,
      barrier: true,
      payload: {
        ...origin,
        order_id: `o-${f.hex(10)}`,
        amount: f.int(150, 900) + 0.99,
        currency: "USD",
        items: 1,
        payment_method: "card",
        card_fingerprint: `card-${tag}-${round}`,
      },
    };
  }
}

function* cardTesting(f: EventFactory, card: string, tag: string): Generator<Move, never> {
  const mules = Array.from({ length: CARD_MULES }, (_, i) => ({
    id: `mule-${tag}-${String(i).padStart(2, "0")}`,
    ip: `198.51.100.${f.int(1, 254)}`,
    device: `dev-${f.hex(8)}`,
  }));
  for (;;) {
    const m = f.pick(mules);
    yield {
      type: "purchase",
      user_id: m.id,
      payload: {
        ip: m.ip,
        device_id: m.device,
        order_id: `o-${f.hex(10)}`,
        // Testing whether the card works: amounts too small to notice.
        amount: f.int(50, 299) / 100,
        currency: "USD",
        items: 1,
        payment_method: "card",
        card_fingerprint: card,
      },
    };
  }
}

function* loginStorm(f: EventFactory, ips: string[], victims: string[]): Generator<Move, never> {
  for (;;) {
    // Cubing skews the pick: the first IP (a hot proxy) carries ~40% of the attempts.
    const ip = ips[Math.floor(f.rnd() ** 3 * ips.length)]!;
    const user_id = f.pick(victims);
    yield f.rnd() < STORM_SUCCESS
      ? { type: "login", user_id, payload: { ip, method: "password", user_agent: STUFFING_UA } }
      : {
        type: "login_failed",
        user_id,
        payload: {
          ip,
          reason: f.pick(["bad_password", "bad_password", "locked"]),
          user_agent: STUFFING_UA,
        },
      };
  }
}
