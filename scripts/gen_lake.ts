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
 * percent), ~10k users with a home country, devices and IPs (built by `scripts/events_gen.ts`,
 * shared with the traffic generator), `received_at` spread evenly over `--days` days from `--start`. About `--dup-rate` of the events are re-deliveries of an event of
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
import { LakeEngine } from "../lake/engine/engine.ts";
import { TOPIC } from "../lake/layout.ts";
import { LocalStore } from "../lake/storage/local.ts";
import { loadConfig } from "../config.ts";
import type { Alert } from "../shared/alert.ts";
import { combineScores } from "../shared/alert_score.ts";
import type { Envelope, EventType, PartitionType } from "../shared/schemas.ts";
import { microsToIso } from "../shared/time.ts";
import { EventFactory, prng } from "./events_gen.ts";
import { Lake } from "../lake/lake.ts";

export { prng };

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

/** Writes the generated lake; returns counts and timings. */
export async function generateLake(o: GenOptions, log: (msg: string) => void = () => {}) {
  const f = new EventFactory(prng(o.seed));
  const users = f.users(o.users);

  const engine = new LakeEngine({ timeoutMs: 600_000 });
  const store = await LocalStore.open(o.lakeDir);
  const lake = new Lake(store, engine);
  const writer = new BronzeWriter(engine, lake.bronze);
  const alerts = new LakeAlertSink(engine, lake.alerts);
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
        const receivedUs = startUs + Math.floor(((done + i) / o.events) * spanUs) + f.int(0, 999);
        let event: Envelope;
        if (recent.length > 0 && f.rnd() < o.dupRate) {
          // A re-delivery (client retry): same event, later reception, new log offset.
          event = { ...f.pick(recent), received_at: microsToIso(receivedUs) };
          duplicates++;
        } else {
          const u = f.pick(users);
          let occurredUs = receivedUs - f.int(0, 5_000_000);
          if (f.rnd() < o.lateRate) {
            occurredUs = receivedUs - f.int(3_600_000_000, 3 * 86_400_000_000);
            late++;
          }
          const isOther = f.rnd() < o.otherRate;
          const type: EventType = isOther ? "click" : f.type();
          const partition: PartitionType = isOther ? "other" : type;
          if (isOther) other++;
          event = {
            event_id: f.uuid(),
            type: partition,
            event_type: isOther ? "custom_event" : type,
            user_id: u.id,
            occurred_at: microsToIso(occurredUs),
            received_at: microsToIso(receivedUs),
            source: "gen",
            payload: isOther ? { note: "unknown type" } : f.payload(type, u),
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
        else recent[Math.floor(f.rnd() * recent.length)] = e;
      }
      log(`bronze: ${done}/${o.events} events`);
    }
    const bronzeMs = performance.now() - t0;

    const raised: Alert[] = [];
    for (let i = 0; i < Math.min(o.alerts, purchases.length); i++) {
      const e = purchases[Math.floor(f.rnd() * purchases.length)]!;
      const amount = Number(e.payload.amount);
      const score = Math.round((0.7 + f.rnd() * 0.3) * 1000) / 1000;
      // Scored as the pipeline scores them: two medium rules (0.75) and an LLM verdict on top.
      const combined = combineScores(
        { score: 0.75, severity: "medium", decision: "review" },
        { score, verdict: "fraud" },
      );
      raised.push({
        alert_id: f.uuid(),
        user_id: e.user_id,
        raised_at: e.received_at,
        trigger_event_id: e.event_id,
        trigger_type: e.event_type,
        occurred_at: e.occurred_at,
        rules: [
          { name: "high_value_purchase", severity: "medium", reason: `amount ${amount}` },
          { name: "rapid_successive_purchases", severity: "medium", reason: "5 purchases in 1 h" },
        ],
        ...combined,
        llm: {
          status: "ok",
          fraud_score: score,
          verdict: "fraud",
          rationale: "generated",
          model: "generated",
          latency_ms: 0,
        },
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
    lakeDir: arg(a, "lake") ?? loadConfig().LAKE_DIR,
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
  if (!TOPIC.test(opts.topic)) throw new Error("--topic: letters, digits, ._-");
  const result = await generateLake(opts, (m) => console.error(m));
  console.log(JSON.stringify({ lake: opts.lakeDir, start, days: opts.days, ...result }));
}
