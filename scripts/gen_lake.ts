/**
 * Writes generated events straight into a lake's bronze table, through `BronzeWriter` (the same
 * exactly-once writer the gateway uses, without HTTP, the WAL or validation: a fast path for
 * measuring the silver and gold jobs), and a handful of alerts through `LakeAlertSink`.
 *
 * ```sh
 * deno run -A scripts/gen_lake.ts [--lake DIR] [--events 1000000] [--users 10000] [--days 7]
 *   [--batch 50000] [--dup-rate 0.01] [--late-rate 0.005] [--other-rate 0.0005] [--alerts 25]
 *   [--start YYYY-MM-DD] [--seed 42] [--topic gen]
 * ```
 *
 * Events: all 13 types in a realistic mix (page views and clicks dominate, purchases are a few
 * percent), ~10k users with a home country, devices and IPs, `received_at` spread evenly over
 * `--days` days from `--start`. About `--dup-rate` of the events are re-deliveries of an event of
 * an earlier batch (same `event_id` and content, a later `received_at` and offset), `--late-rate`
 * arrive 1 h–3 days after they occurred, and `--other-rate` are of an unknown type (`other`).
 * Payloads match `pipeline/schemas.ts`. The same seed gives the same events.
 *
 * The events go to log partition `<topic>+0` (default `gen`), not to the embedded WAL's `wal+0`:
 * a gateway started on the generated lake then loads its own WAL from offset 0 instead of
 * skipping everything below the generator's offsets (see "Keep the log and the lake together").
 * Running again appends after the offsets already written.
 *
 * @module
 */
import { LakeAlertSink } from "../lake/alerts.ts";
import { type BronzeRow, BronzeWriter } from "../lake/bronze.ts";
import { LakeEngine } from "../lake/engine.ts";
import type { Alert } from "../pipeline/fraud/alerts.ts";
import type { Envelope, EventType, PartitionType } from "../pipeline/schemas.ts";
import { microsToIso } from "../pipeline/validate.ts";

/** Options of {@link generateLake}. */
export interface GenOptions {
  lakeDir: string;
  events: number;
  users: number;
  days: number;
  batch: number;
  dupRate: number;
  lateRate: number;
  otherRate: number;
  alerts: number;
  /** First day of `received_at`, `YYYY-MM-DD`. */
  start: string;
  /** The log topic the events are filed under (partition 0). */
  topic: string;
  seed: number;
}

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

const MIX: [EventType, number][] = [
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
const COUNTRIES = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL", "SE", "BR", "IN", "JP"];
const PAGES = ["/", "/search", "/cart", "/checkout", "/account", "/help", "/product/1", "/blog"];
const ENDPOINTS = ["/v1/items", "/v1/orders", "/v1/users/me", "/v1/search", "/v1/auth"];
const STATUS = [200, 200, 200, 200, 201, 204, 400, 401, 403, 404, 429, 500, 503];

interface User {
  id: string;
  country: string;
  ips: string[];
  devices: string[];
}

/** Writes the generated lake; returns counts and timings. */
export async function generateLake(o: GenOptions, log: (msg: string) => void = () => {}) {
  const rnd = prng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const hex = (n: number) => {
    let s = "";
    for (let i = 0; i < n; i++) s += Math.floor(rnd() * 16).toString(16);
    return s;
  };
  const uuid = () =>
    `${hex(8)}-${hex(4)}-4${hex(3)}-${"89ab"[Math.floor(rnd() * 4)]}${hex(3)}-${hex(12)}`;

  const users: User[] = Array.from({ length: o.users }, (_, i) => ({
    id: `u-${String(i).padStart(5, "0")}`,
    country: pick(COUNTRIES),
    ips: Array.from({ length: int(1, 3) }, () => `10.${int(0, 255)}.${int(0, 255)}.${int(1, 254)}`),
    devices: Array.from({ length: int(1, 3) }, () => `dev-${hex(8)}`),
  }));
  const total = MIX.reduce((a, [, w]) => a + w, 0);
  const cumulative: [EventType, number][] = [];
  let acc = 0;
  for (const [t, w] of MIX) cumulative.push([t, (acc += w) / total]);
  const pickType = (): EventType => {
    const r = rnd();
    for (const [t, c] of cumulative) if (r < c) return t;
    return "page_view";
  };

  const origin = (u: User) => {
    const o: Record<string, unknown> = {
      ip: pick(u.ips),
      country: rnd() < 0.97 ? u.country : pick(COUNTRIES),
      device_id: pick(u.devices),
      session_id: `s-${hex(10)}`,
    };
    if (rnd() < 0.3) o.user_agent = "Mozilla/5.0 (X11; Linux x86_64)";
    return o;
  };
  const payloadOf = (type: EventType, u: User): Record<string, unknown> => {
    switch (type) {
      case "login":
        return { ...origin(u), method: pick(["password", "sso", "otp", "token"]) };
      case "logout":
        return origin(u);
      case "login_failed":
        return { ...origin(u), reason: pick(["bad_password", "locked", "unknown_user"]) };
      case "purchase":
        return {
          ...origin(u),
          order_id: `o-${hex(10)}`,
          amount: Math.round((5 + rnd() * rnd() * 600) * 100) / 100,
          currency: rnd() < 0.8 ? "USD" : "EUR",
          items: int(1, 6),
          payment_method: pick(["card", "card", "paypal", "wallet", "bank_transfer"]),
          card_fingerprint: `card-${u.id}-${int(1, 2)}`,
        };
      case "add_to_cart":
        return {
          ...origin(u),
          product_id: `p-${int(1, 5000)}`,
          quantity: int(1, 4),
          price: Math.round(rnd() * 20000) / 100,
        };
      case "refund":
        return {
          ...origin(u),
          order_id: `o-${hex(10)}`,
          amount: Math.round(rnd() * 30000) / 100,
          currency: "USD",
          reason: pick(["damaged", "late", "changed_mind"]),
        };
      case "click":
        return { ...origin(u), element: pick(["buy", "nav", "logo", "banner"]), page: pick(PAGES) };
      case "page_view": {
        const p: Record<string, unknown> = { ...origin(u), page: pick(PAGES) };
        if (rnd() < 0.5) p.referrer = pick(["https://search.example/", "https://news.example/"]);
        p.duration_ms = int(200, 120000);
        return p;
      }
      case "api_call":
        return {
          ...origin(u),
          endpoint: pick(ENDPOINTS),
          method: pick(["GET", "GET", "POST", "PUT", "DELETE"]),
          status_code: pick(STATUS),
          latency_ms: Math.round(rnd() * 80000) / 100,
        };
      case "file_access":
        return {
          ...origin(u),
          path: `/home/${u.id}/${pick(["a.txt", "b.pdf", "c.png"])}`,
          action: pick(["read", "read", "write", "delete", "share"]),
          bytes: int(100, 50_000_000),
        };
      case "radio_play":
        return { ...origin(u), station_id: `st-${int(1, 40)}`, duration_s: int(10, 7200) };
      case "tv_play":
        return {
          ...origin(u),
          channel_id: `ch-${int(1, 60)}`,
          program_id: `pg-${int(1, 900)}`,
          duration_s: Math.round(rnd() * 1e6) / 100,
        };
      case "sale": {
        const quantity = int(1, 5), unit = Math.round((1 + rnd() * 99) * 100) / 100;
        return {
          sale_id: `sale-${hex(10)}`,
          store_id: `store-${int(1, 120)}`,
          product_id: `p-${int(1, 5000)}`,
          quantity,
          unit_price: unit,
          amount: Math.round(quantity * unit * 100) / 100,
          currency: "USD",
        };
      }
    }
  };

  const engine = new LakeEngine({ timeoutMs: 600_000 });
  const writer = new BronzeWriter(engine, o.lakeDir);
  const alerts = new LakeAlertSink(engine, o.lakeDir);
  const startUs = Date.parse(`${o.start}T00:00:00Z`) * 1000;
  const spanUs = o.days * 86_400_000_000;
  let offset = await writer.committedOffset(o.topic, 0);
  const recent: Envelope[] = []; // events of earlier batches, for re-deliveries
  const purchases: Envelope[] = []; // alert triggers
  let written = 0, duplicates = 0, late = 0, other = 0, files = 0, bytes = 0;
  const t0 = performance.now();
  try {
    for (let done = 0; done < o.events;) {
      const n = Math.min(o.batch, o.events - done);
      const rows: BronzeRow[] = [];
      const fresh: Envelope[] = [];
      for (let i = 0; i < n; i++) {
        const receivedUs = startUs + Math.floor(((done + i) / o.events) * spanUs) + int(0, 999);
        let event: Envelope;
        if (recent.length > 0 && rnd() < o.dupRate) {
          // A re-delivery (client retry): same event, later reception, new log offset.
          event = { ...pick(recent), received_at: microsToIso(receivedUs) };
          duplicates++;
        } else {
          const u = pick(users);
          let occurredUs = receivedUs - int(0, 5_000_000);
          if (rnd() < o.lateRate) {
            occurredUs = receivedUs - int(3_600_000_000, 3 * 86_400_000_000);
            late++;
          }
          const isOther = rnd() < o.otherRate;
          const type: EventType = isOther ? "click" : pickType();
          const partition: PartitionType = isOther ? "other" : type;
          if (isOther) other++;
          event = {
            event_id: uuid(),
            type: partition,
            event_type: isOther ? "custom_event" : type,
            user_id: u.id,
            occurred_at: microsToIso(occurredUs),
            received_at: microsToIso(receivedUs),
            source: "gen",
            payload: isOther ? { note: "unknown type" } : payloadOf(type, u),
          };
          fresh.push(event);
          if (type === "purchase" && !isOther && purchases.length < 10_000) purchases.push(event);
        }
        rows.push({ offset: offset + i, event });
      }
      const result = await writer.write({
        topic: o.topic,
        partition: 0,
        firstOffset: offset,
        lastOffset: offset + n - 1,
        rows,
      });
      files += result.files.length;
      bytes += result.bytes;
      offset += n;
      done += n;
      written += result.rows;
      for (const e of fresh) {
        if (recent.length < 100_000) recent.push(e);
        else recent[Math.floor(rnd() * recent.length)] = e;
      }
      log(`bronze: ${done}/${o.events} events`);
    }
    const bronzeMs = performance.now() - t0;

    const raised: Alert[] = [];
    for (let i = 0; i < Math.min(o.alerts, purchases.length); i++) {
      const e = purchases[Math.floor(rnd() * purchases.length)]!;
      const amount = Number(e.payload.amount);
      const score = Math.round((0.7 + rnd() * 0.3) * 1000) / 1000;
      raised.push({
        alert_id: uuid(),
        user_id: e.user_id,
        raised_at: e.received_at,
        trigger_event_id: e.event_id,
        trigger_type: e.event_type,
        occurred_at: e.occurred_at,
        rules: [
          { name: "high_value_purchase", severity: "medium", reason: `amount ${amount}` },
          { name: "rapid_successive_purchases", severity: "medium", reason: "5 purchases in 1 h" },
        ],
        rule_score: 0.75,
        llm: { status: "disabled", reason: "generated" },
        fraud_score: score,
        window: {
          events: 1,
          types: { purchase: 1 },
          first_at: e.occurred_at,
          last_at: e.occurred_at,
        },
        event_ids: [e.event_id],
      });
    }
    await alerts.send(raised);
    return {
      events: written,
      duplicates,
      late,
      other,
      alerts: raised.length,
      files,
      bytes,
      next_offset: offset,
      bronze_ms: Math.round(bronzeMs),
      events_per_s: Math.round(written / (bronzeMs / 1000)),
    };
  } finally {
    engine.close();
  }
}

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

if (import.meta.main) {
  const a = Deno.args;
  const num = (name: string, dflt: number) => {
    const v = arg(a, name);
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number`);
    return n;
  };
  const days = num("days", 7);
  const today = new Date().toISOString().slice(0, 10);
  const start = arg(a, "start") ??
    new Date(Date.parse(`${today}T00:00:00Z`) - (days - 1) * 86_400_000).toISOString().slice(
      0,
      10,
    );
  if (!/^\d{4}-\d{2}-\d{2}$/.test(start)) throw new Error("--start must be YYYY-MM-DD");
  const opts: GenOptions = {
    lakeDir: arg(a, "lake") ?? Deno.env.get("LAKE_DIR") ?? "./data/lake",
    events: num("events", 1_000_000),
    users: Math.max(1, num("users", 10_000)),
    days: Math.max(1, days),
    batch: Math.max(1, num("batch", 50_000)),
    dupRate: num("dup-rate", 0.01),
    lateRate: num("late-rate", 0.005),
    otherRate: num("other-rate", 0.0005),
    alerts: num("alerts", 25),
    start,
    seed: num("seed", 42),
    topic: arg(a, "topic") ?? "gen",
  };
  if (!/^[A-Za-z0-9._-]{1,249}$/.test(opts.topic)) throw new Error("--topic: letters, digits, ._-");
  const result = await generateLake(opts, (m) => console.error(m));
  console.log(JSON.stringify({ lake: opts.lakeDir, start, days: opts.days, ...result }));
}
