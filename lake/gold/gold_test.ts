import assert from "node:assert/strict";
import { join } from "node:path";
import {
  lakeOf,
  partitionFiles,
  storeOf,
  tableFiles,
  testEvent,
} from "../../tests/lake_helpers.ts";
import type { Alert } from "../../shared/alert.ts";
import type { Envelope } from "../../shared/schemas.ts";
import { LakeAlertSink } from "../alerts.ts";
import { BronzeWriter } from "../bronze.ts";
import { LakeEngine } from "../engine/engine.ts";
import { readGoldProgress, runGold } from "./gold.ts";
import { DAILY_TYPE_METRICS_COLUMNS, USER_DAILY_FEATURES_COLUMNS } from "../schemas.ts";
import { JOB_KEYS, sqlFileList, TABLES } from "../layout.ts";
import { runSilver } from "../silver/silver.ts";
import { withLake as withLakeIn } from "../engine/testing.ts";

const D1 = "2026-11-20", D2 = "2026-11-21";

const withLake = (fn: (lake: string, engine: LakeEngine) => Promise<void>) =>
  withLakeIn("gold_test_", fn);

let offset = 0;
async function bronze(lake: string, engine: LakeEngine, events: Envelope[]) {
  const first = offset;
  offset += events.length;
  await new BronzeWriter(engine, (await lakeOf(lake, engine)).bronze).write({
    topic: "wal",
    partition: 0,
    firstOffset: first,
    lastOffset: offset - 1,
    rows: events.map((event, i) => ({ offset: first + i, event })),
  });
}

const ev = (
  type: Envelope["type"],
  user: string,
  at: string,
  payload: Record<string, unknown> = {},
): Envelope =>
  testEvent({ type, event_type: type, user_id: user, occurred_at: at, received_at: at, payload });

function alert(user: string, at: string, score: number): Alert {
  return {
    alert_id: crypto.randomUUID(),
    user_id: user,
    raised_at: at,
    trigger_event_id: crypto.randomUUID(),
    trigger_type: "purchase",
    occurred_at: at,
    rules: [{ name: "high_value_purchase", severity: "medium", reason: "amount" }],
    rule_score: 0.5,
    llm_score: null,
    fraud_score: score,
    severity: "medium",
    llm_disagrees: false,
    llm: { status: "disabled", reason: "test" },
    window: { events: 1, types: { purchase: 1 }, first_at: at, last_at: at },
    event_ids: [],
  };
}

type Features = Record<string, unknown> & { user_id: string; dt: string };

/** The one live file of a gold partition (the log's snapshot). */
async function live(engine: LakeEngine, lake: string, t: string, dt: string): Promise<string> {
  const files = (await partitionFiles(engine, lake, t)).get(dt) ?? [];
  assert.equal(files.length, 1, `${t} dt=${dt}: ${files}`);
  const table = (await lakeOf(lake, engine)).table(t);
  return await table.store.localFile(table.keyOf(files[0]!));
}

async function table(engine: LakeEngine, lake: string, t: string, order: string) {
  const files = await tableFiles(engine, lake, t);
  if (files.length === 0) return [];
  const rows = await engine.query(
    `SELECT * EXCLUDE (dt), CAST(dt AS VARCHAR) AS dt
       FROM read_parquet(${sqlFileList(files)}, hive_partitioning = 1) ORDER BY dt, ${order}`,
  );
  // BIGINT → number, for readable comparisons.
  return rows.map((r) =>
    Object.fromEntries(
      Object.entries(r).map(([k, v]) => [k, typeof v === "bigint" ? Number(v) : v]),
    )
  );
}
const features = async (engine: LakeEngine, lake: string) =>
  await table(engine, lake, TABLES.userDailyFeatures, "user_id") as Features[];
const metrics = async (engine: LakeEngine, lake: string) =>
  await table(engine, lake, TABLES.dailyTypeMetrics, "event_type");

const find = (rows: Features[], user: string, dt: string) =>
  rows.find((r) => r.user_id === user && r.dt === dt)!;

/** The small dataset the expectations below are computed by hand from. */
async function seed(lake: string, engine: LakeEngine) {
  await bronze(lake, engine, [
    // u1 on D1: logins from 2 IPs, 2 countries, 2 devices; two purchases.
    ev("login", "u1", `${D1}T08:00:00Z`, { ip: "10.0.0.1", country: "DE", device_id: "d1" }),
    ev("login_failed", "u1", `${D1}T08:01:00Z`, { ip: "10.0.0.2", country: "DE", device_id: "d1" }),
    ev("login_failed", "u1", `${D1}T08:02:00Z`, { ip: "10.0.0.2", country: "FR", device_id: "d2" }),
    ev("purchase", "u1", `${D1}T10:00:00Z`, { amount: 10, ip: "10.0.0.1" }),
    ev("purchase", "u1", `${D1}T12:00:00Z`, { amount: 30 }),
    ev("page_view", "u1", `${D1}T13:00:00Z`, { page: "/" }),
    // u2 on D1: a store sale (no origin fields) and a click.
    ev("sale", "u2", `${D1}T09:00:00Z`, {
      product_id: "p",
      quantity: 2,
      unit_price: 5,
      amount: 10,
    }),
    ev("click", "u2", `${D1}T09:30:00Z`, { ip: "10.0.0.3" }),
    // D2
    ev("purchase", "u1", `${D2}T09:00:00Z`, { amount: 5 }),
    ev("logout", "u1", `${D2}T09:05:00Z`),
    ev("purchase", "u2", `${D2}T08:00:00Z`, { amount: 100 }),
    ev("refund", "u2", `${D2}T08:30:00Z`, { order_id: "o", amount: 100 }),
  ]);
  await new LakeAlertSink(engine, (await lakeOf(lake, engine)).alerts).send([
    alert("u1", `${D1}T12:00:00Z`, 0.8),
    alert("u1", `${D1}T12:00:01Z`, 0.95),
  ]);
}

Deno.test("gold: user_daily_features and daily_type_metrics match hand-computed values", async () => {
  await withLake(async (lake, engine) => {
    await seed(lake, engine);
    await runSilver(engine, await lakeOf(lake, engine));
    const s = await runGold(engine, await lakeOf(lake, engine));
    assert.deepEqual(s.dates, [D1, D2]);
    assert.equal(s.partitions_rewritten, 4);
    assert.equal(s.rows.user_daily_features, 4);

    const f = await features(engine, lake);
    assert.equal(f.length, 4);
    const u1d1 = find(f, "u1", D1);
    assert.deepEqual(
      {
        events_total: u1d1.events_total,
        n_login: u1d1.n_login,
        n_login_failed: u1d1.n_login_failed,
        n_purchase: u1d1.n_purchase,
        n_page_view: u1d1.n_page_view,
        n_logout: u1d1.n_logout,
        n_sale: u1d1.n_sale,
      },
      {
        events_total: 6,
        n_login: 1,
        n_login_failed: 2,
        n_purchase: 2,
        n_page_view: 1,
        n_logout: 0,
        n_sale: 0,
      },
    );
    assert.equal(u1d1.login_failure_ratio, 2 / 3);
    assert.equal(u1d1.distinct_ips, 2);
    assert.equal(u1d1.distinct_countries, 2);
    assert.equal(u1d1.distinct_devices, 2);
    assert.equal(u1d1.purchase_count, 2);
    assert.equal(u1d1.purchase_sum, 40);
    assert.equal(u1d1.purchase_avg, 20);
    assert.equal(u1d1.purchase_max, 30);
    assert.equal(u1d1.seconds_since_prev_purchase, null, "no purchase before D1");
    assert.equal(u1d1.alert_count, 2);
    assert.equal(u1d1.max_fraud_score, 0.95);

    const u2d1 = find(f, "u2", D1);
    assert.equal(u2d1.events_total, 2);
    assert.equal(u2d1.n_sale, 1);
    assert.equal(u2d1.n_click, 1);
    assert.equal(u2d1.login_failure_ratio, null, "no logins at all");
    assert.equal(u2d1.distinct_ips, 1, "the sale carries no ip");
    assert.equal(u2d1.distinct_countries, 0);
    assert.equal(u2d1.purchase_count, 0);
    assert.equal(u2d1.purchase_sum, 0);
    assert.equal(u2d1.purchase_avg, null);
    assert.equal(u2d1.purchase_max, null);
    assert.equal(u2d1.seconds_since_prev_purchase, null);
    assert.equal(u2d1.alert_count, 0);
    assert.equal(u2d1.max_fraud_score, null);

    const u1d2 = find(f, "u1", D2);
    assert.equal(u1d2.events_total, 2);
    assert.equal(u1d2.login_failure_ratio, null);
    assert.equal(u1d2.purchase_sum, 5);
    // D2 09:00 back to D1 12:00, the user's last purchase before D2.
    assert.equal(u1d2.seconds_since_prev_purchase, 21 * 3600);
    assert.equal(u1d2.alert_count, 0);
    const u2d2 = find(f, "u2", D2);
    assert.equal(u2d2.n_refund, 1);
    assert.equal(u2d2.purchase_count, 1);
    assert.equal(u2d2.purchase_sum, 100, "refund amounts are not purchases");
    assert.equal(u2d2.seconds_since_prev_purchase, null);

    const m = await metrics(engine, lake);
    const d1 = Object.fromEntries(m.filter((r) => r.dt === D1).map((r) => [r.event_type, r]));
    assert.deepEqual(Object.keys(d1).sort(), [
      "click",
      "login",
      "login_failed",
      "page_view",
      "purchase",
      "sale",
    ]);
    assert.equal(d1.login_failed!.events, 2);
    assert.equal(d1.login_failed!.distinct_users, 1);
    assert.equal(d1.purchase!.events, 2);
    assert.equal(d1.purchase!.amount_sum, 40);
    assert.equal(d1.purchase!.first_at, Date.parse(`${D1}T10:00:00Z`));
    assert.equal(d1.purchase!.last_at, Date.parse(`${D1}T12:00:00Z`));
    assert.equal(d1.sale!.amount_sum, null, "amount_sum is for purchases only");
    assert.equal(d1.click!.amount_sum, null);
    const d2 = Object.fromEntries(m.filter((r) => r.dt === D2).map((r) => [r.event_type, r]));
    assert.equal(d2.purchase!.events, 2);
    assert.equal(d2.purchase!.distinct_users, 2);
    assert.equal(d2.purchase!.amount_sum, 105);

    // The files' schemas, as documented.
    const described = async (t: string) =>
      (await engine.query<{ column_name: string; column_type: string }>(
        `DESCRIBE SELECT * FROM read_parquet('${await live(engine, lake, t, D1)}',
                                             hive_partitioning = false)`,
      )).map((
        c,
      ) => [c.column_name, c.column_type.replace("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")]);
    assert.deepEqual(
      await described(TABLES.userDailyFeatures),
      USER_DAILY_FEATURES_COLUMNS.map((c) => [c.name, c.sql]),
    );
    assert.deepEqual(
      await described(TABLES.dailyTypeMetrics),
      DAILY_TYPE_METRICS_COLUMNS.map((c) => [c.name, c.sql]),
    );
  });
});

Deno.test("gold: recomputes only changed dates; a late purchase cascades to the next purchase day", async () => {
  await withLake(async (lake, engine) => {
    await seed(lake, engine);
    await runSilver(engine, await lakeOf(lake, engine));
    await runGold(engine, await lakeOf(lake, engine));
    const progress = await Deno.readTextFile(join(lake, JOB_KEYS.goldProgress));
    const d2File = await live(engine, lake, TABLES.userDailyFeatures, D2);

    // Nothing new: no work, nothing rewritten.
    const again = await runGold(engine, await lakeOf(lake, engine));
    assert.deepEqual(again.dates, []);
    assert.equal(again.partitions_rewritten, 0);
    assert.equal(await Deno.readTextFile(join(lake, JOB_KEYS.goldProgress)), progress);

    // A new alert on D2 only: D2 is recomputed, D1 is not.
    const d1File = await live(engine, lake, TABLES.userDailyFeatures, D1);
    await new LakeAlertSink(engine, (await lakeOf(lake, engine)).alerts).send([
      alert("u2", `${D2}T08:00:00Z`, 0.75),
    ]);
    const a = await runGold(engine, await lakeOf(lake, engine));
    assert.deepEqual(a.dates, [D2]);
    assert.equal(await live(engine, lake, TABLES.userDailyFeatures, D1), d1File);
    let f = await features(engine, lake);
    assert.equal(find(f, "u2", D2).alert_count, 1);
    assert.equal(find(f, "u2", D2).max_fraud_score, 0.75);
    assert.notEqual(await live(engine, lake, TABLES.userDailyFeatures, D2), d2File);

    // A late purchase by u2 on D1 arrives: D1 changes in silver, and D2 (u2's next purchase day)
    // must be recomputed too, since its look-back now ends on D1.
    await bronze(lake, engine, [{
      ...ev("purchase", "u2", `${D1}T20:00:00Z`, { amount: 7 }),
      received_at: `${D2}T23:00:00Z`,
    }]);
    const s = await runSilver(engine, await lakeOf(lake, engine));
    assert.deepEqual(s.dates, [D1]);
    const g = await runGold(engine, await lakeOf(lake, engine));
    assert.deepEqual(g.dates, [D1, D2]);
    assert.deepEqual(g.cascaded, [D2]);
    f = await features(engine, lake);
    assert.equal(find(f, "u2", D1).purchase_count, 1);
    assert.equal(find(f, "u2", D1).purchase_sum, 7);
    assert.equal(find(f, "u2", D2).seconds_since_prev_purchase, 12 * 3600);
    assert.equal(find(f, "u1", D2).seconds_since_prev_purchase, 21 * 3600, "u1 unchanged");

    const p = await readGoldProgress(await storeOf(lake));
    assert.deepEqual(Object.keys(p.silver).sort(), [D1, D2]);
    assert.deepEqual(Object.keys(p.alerts).sort(), [D1, D2]);
  });
});

Deno.test("gold: a crash before progress is written recomputes the same dates next time", async () => {
  await withLake(async (lake, engine) => {
    await seed(lake, engine);
    await runSilver(engine, await lakeOf(lake, engine));
    await assert.rejects(
      runGold(engine, await lakeOf(lake, engine), {
        beforeProgress: () => {
          throw new Error("crash");
        },
      }),
      /crash/,
    );
    const before = await features(engine, lake);
    const g = await runGold(engine, await lakeOf(lake, engine));
    assert.deepEqual(g.dates, [D1, D2]);
    assert.deepEqual(await features(engine, lake), before);
    assert.deepEqual((await runGold(engine, await lakeOf(lake, engine))).dates, []);
  });
});
