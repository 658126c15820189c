/**
 * Integration: the whole mission on both stores, local disk and S3 (`LAKE_URL=s3://…` on the
 * s3proxy `scripts/test.sh` runs). One gateway process (Kafka mode, role `all`) takes events over
 * HTTP and from a Kafka producer into bronze, raises an alert, and builds silver (every domain and
 * its rejects) and gold (both tables) on demand. Then Delta's own Java reader reads every table,
 * and what it counts must equal what the test sent, counted here from the events themselves (and
 * the alerts from the alerts topic), never from the project's own reading of the lake. The query
 * API must answer over the same lake.
 */
import assert from "node:assert/strict";
import { type DeltaSnapshot, readDeltaTables } from "./delta_reader.ts";
import { assertCleanStop, postEvents, startGateway, waitFor } from "./gateway_process.ts";
import { produce, readTopic, setup, teardown } from "./kafka_helpers.ts";
import { botAttack, randomIp } from "./fraud_helpers.ts";
import { bronzeRecords, STORE_KINDS, type TestLake, testLake } from "./lake_store_helpers.ts";
import { type ClientEvent, createScenario } from "../scripts/events_gen.ts";
import { Lake } from "../lake/lake.ts";
import { SILVER_DOMAINS, TABLES } from "../lake/layout.ts";
import { DOMAINS, type EventType } from "../shared/schemas.ts";

const TOKEN = "delta-lake-test-admin-token";
/** A type no schema knows: kept in bronze's `other` partition, a reject of silver. */
const UNKNOWN_TYPE = "custom_ping";
const PARTITIONS = 3;

type Sent = Pick<ClientEvent, "event_id" | "user_id" | "occurred_at"> & { type: string };

/** `n` events of every type from the traffic generator, with ids no other run has. */
function traffic(n: number, seed: number): Sent[] {
  const scenario = createScenario("normal", { seed, users: 30 });
  return Array.from({ length: n }, () => scenario.next().event);
}

/** Counts of `items` by `key`. */
function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1;
  return out;
}

const dayOf = (iso: string) => iso.slice(0, 10);
const domainOf = (type: string) => DOMAINS[type as EventType] as string | undefined;

/** Every UTC date from `fromMs` to `toMs`. */
function datesBetween(fromMs: number, toMs: number): Set<string> {
  const out = new Set<string>();
  for (let t = fromMs; t <= toMs + 86_400_000; t += 86_400_000) {
    out.add(new Date(Math.min(t, toMs)).toISOString().slice(0, 10));
  }
  return out;
}

/** What every table of the lake must hold, from what was sent (and the alerts published). */
function expectedTables(sent: Sent[], alerts: { alert_id: string; occurred_at: string }[]) {
  const typed = sent.filter((e) => domainOf(e.type));
  const silver = Object.fromEntries(SILVER_DOMAINS.map((d) => {
    const rows = typed.filter((e) => domainOf(e.type) === d);
    return [d, { rows: rows.length, byDt: countBy(rows, (e) => `dt=${dayOf(e.occurred_at)}`) }];
  }));
  const userDays = new Set(typed.map((e) => `${dayOf(e.occurred_at)}\u0000${e.user_id}`));
  const typeDays = new Set(typed.map((e) => `${dayOf(e.occurred_at)}\u0000${e.type}`));
  const byDtOf = (keys: Set<string>) => countBy([...keys], (k) => `dt=${k.split("\u0000")[0]}`);
  return {
    eventIds: sent.map((e) => e.event_id).sort(),
    byType: countBy(sent, (e) => domainOf(e.type) ? e.type : "other"),
    silver,
    rejects: sent.filter((e) => !domainOf(e.type)).map((e) => e.event_id).sort(),
    userDailyFeatures: { rows: userDays.size, byDt: byDtOf(userDays) },
    dailyTypeMetrics: { rows: typeDays.size, byDt: byDtOf(typeDays) },
    alerts: {
      ids: alerts.map((a) => a.alert_id).sort(),
      byDt: countBy(alerts, (a) => `dt=${dayOf(a.occurred_at)}`),
    },
  };
}

/** Checks what holds for every table Delta's reader read: protocol, partitioning, sizes. */
function assertDeltaTable(t: DeltaSnapshot): void {
  assert.deepEqual(t.protocol, { minReaderVersion: 1, minWriterVersion: 2 }, t.table);
  assert.equal(t.partitionColumns[0], "dt", t.table);
  for (const f of t.files) assert.equal(f.actualSize, f.size, `size of ${t.table}/${f.path}`);
  assert.equal(
    t.files.reduce((n, f) => n + (f.numRecords ?? NaN), 0),
    t.rows,
    `${t.table}: the files' numRecords add up to the rows read`,
  );
}

const column = (t: DeltaSnapshot, i = 0) => (t.values ?? []).map((r) => String(r[i])).sort();

/**
 * Delta's Java reader reads every table of `lake` (three JVMs: the tables with event ids, the
 * alerts, gold), and what it counts must be `want`; `records` is how many the topic holds.
 */
async function assertTablesAsSent(
  lake: TestLake,
  topic: string,
  want: ReturnType<typeof expectedTables>,
  records: number,
  startedMs: number,
): Promise<DeltaSnapshot> {
  // Delta's Java reader, three JVMs: tables with event ids, the alerts, gold.
  const opts = { env: lake.readerEnv };
  const appIds = Array.from({ length: PARTITIONS }, (_, p) => `${topic}+${p}`);
  const withIds = [TABLES.bronze, ...SILVER_DOMAINS.map(TABLES.silver), TABLES.silverRejects];
  const [events, [alerts], [features, metrics]] = await Promise.all([
    readDeltaTables(withIds.map(lake.uri), { ...opts, txn: appIds, columns: ["event_id"] }),
    readDeltaTables([lake.uri(TABLES.alerts)], { ...opts, columns: ["alert_id"] }),
    readDeltaTables([TABLES.userDailyFeatures, TABLES.dailyTypeMetrics].map(lake.uri), opts),
  ]);
  const [bronze, ...silverAndRejects] = events as [DeltaSnapshot, ...DeltaSnapshot[]];
  for (const t of [...events, alerts!, features!, metrics!]) assertDeltaTable(t);

  // Bronze: every event once, by type, on the dates of the run, and the writers' txn.
  assert.deepEqual(column(bronze), want.eventIds);
  const byType: Record<string, number> = {};
  const runDates = datesBetween(startedMs, Date.now());
  for (const [key, n] of Object.entries(bronze.rowsByPartition)) {
    const [, dt, type] = /^dt=([^/]+)\/type=(.+)$/.exec(key)!;
    assert.ok(runDates.has(dt!), `bronze partition ${key} is not a date of the run`);
    byType[type!] = (byType[type!] ?? 0) + n;
  }
  assert.deepEqual(byType, want.byType);
  assert.equal(
    Object.values(bronze.txn!).reduce((a, v) => a + v + 1, 0),
    records,
    `txn versions ${JSON.stringify(bronze.txn)}`,
  );

  // Silver: each domain's events once, by date; the unknown type in the rejects.
  for (const [i, domain] of SILVER_DOMAINS.entries()) {
    const t = silverAndRejects[i]!;
    assert.equal(t.rows, want.silver[domain]!.rows, `silver/${domain} rows`);
    assert.deepEqual(t.rowsByPartition, want.silver[domain]!.byDt, `silver/${domain}`);
    assert.equal(new Set(column(t)).size, t.rows, `silver/${domain} holds an event twice`);
  }
  assert.deepEqual(column(silverAndRejects.at(-1)!), want.rejects, "silver/_rejects");

  // Gold: one row per user and day, one per type and day. Alerts: those published.
  assert.equal(features!.rows, want.userDailyFeatures.rows);
  assert.deepEqual(features!.rowsByPartition, want.userDailyFeatures.byDt);
  assert.equal(metrics!.rows, want.dailyTypeMetrics.rows);
  assert.deepEqual(metrics!.rowsByPartition, want.dailyTypeMetrics.byDt);
  assert.ok(want.alerts.ids.length > 0, "no alert published");
  assert.deepEqual(column(alerts!), want.alerts.ids);
  assert.deepEqual(alerts!.rowsByPartition, want.alerts.byDt);
  return bronze;
}

for (const kind of STORE_KINDS) {
  Deno.test(`delta lake on ${kind}: HTTP + Kafka → bronze, alerts, silver, gold; Delta's Java reader reads every table as sent; queries answer`, async () => {
    const s = await setup(`delta-${kind}`, PARTITIONS);
    const lake = testLake(kind, s.root);
    const started = Date.now();
    const gw = await startGateway({
      ...s.env,
      ...lake.env,
      JOBS_CRON: "off",
      ADMIN_TOKEN: TOKEN,
      UNKNOWN_TYPES: "other",
      LAKE_FLUSH_INTERVAL_MS: "300",
      // Checkpoints are written (and so read by Delta's reader) within the test's few commits.
      LAKE_CHECKPOINT_INTERVAL: "4",
    });
    try {
      // HTTP: ordinary traffic of all 13 types, a bot attack, and events of an unknown type.
      const bot = `delta-bot-${crypto.randomUUID().slice(0, 8)}`;
      const http: Sent[] = [
        ...traffic(400, 11),
        ...botAttack(bot, Date.now(), randomIp()) as Sent[],
        ...Array.from({ length: 7 }, (_, i) => ({
          event_id: crypto.randomUUID(),
          type: UNKNOWN_TYPE,
          user_id: `odd-${i}`,
          occurred_at: new Date().toISOString(),
          payload: { n: i },
        })),
      ];
      for (let i = 0; i < http.length; i += 100) {
        const batch = http.slice(i, i + 100);
        const res = await postEvents(gw.url, batch);
        assert.equal(res.status, 202, JSON.stringify(res.body));
        assert.equal(res.body.accepted, batch.length);
      }
      // Kafka: a producer writes to the events topic directly.
      const kafka = traffic(300, 12);
      await produce(s.events, kafka.map((e) => JSON.stringify(e)));
      const sent = [...http, ...kafka];
      assert.equal(new Set(sent.map((e) => domainOf(e.type))).size, SILVER_DOMAINS.length + 1);

      // Bronze has every record once the txn versions of the partitions cover the topic.
      const store = await lake.open();
      const own = new Lake(store, s.engine);
      const inBronze = () => bronzeRecords(own, s.events, PARTITIONS);
      assert.ok(
        await waitFor(async () => (await inBronze()) >= sent.length, 60_000, 300),
        `bronze holds ${await inBronze()} of ${sent.length} records`,
      );
      const botAlerts = async () =>
        (await (await fetch(`${gw.url}/alerts?user_id=${bot}`)).json()).alerts?.length ?? 0;
      assert.ok(await waitFor(async () => (await botAlerts()) > 0, 30_000), "no alert in the lake");

      const run = await fetch(`${gw.url}/admin/jobs/all`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      const report = await run.json();
      assert.equal(run.status, 200, JSON.stringify(report));
      assert.equal(report.status, "ok", JSON.stringify(report));

      const published = (await readTopic(s.alerts, 10_000, 4_000)).map((m) =>
        JSON.parse(new TextDecoder().decode(m.value)) as { alert_id: string; occurred_at: string }
      );
      const want = expectedTables(sent, published);

      const bronze = await assertTablesAsSent(lake, s.events, want, sent.length, started);

      // The query API over the same lake.
      const botEvents = await (await fetch(`${gw.url}/events?user_id=${bot}&limit=100`)).json();
      assert.equal(botEvents.events.length, 16);
      const user = await (await fetch(`${gw.url}/users/${bot}`)).json();
      assert.equal(user.features[0]?.events_total, 16, JSON.stringify(user.features));
      assert.ok(user.alerts.length > 0);
      const stats = await (await fetch(`${gw.url}/stats`)).json();
      for (const [type, n] of Object.entries(want.byType)) {
        if (type !== "other") assert.equal(stats.by_type[type], n, `/stats by_type.${type}`);
      }
      // The dashboard: its page, and the two sources it polls (/alerts above, /metrics), which
      // counts the rows written to this lake.
      const page = await fetch(`${gw.url}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
      const metrics = await fetch(`${gw.url}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /^streamgate_lake_rows_written_total [1-9]/m);
      await store.close();
      if (kind === "s3") {
        // Nothing of the lake went to local disk.
        await assert.rejects(() => Deno.stat(s.env.LAKE_DIR!), Deno.errors.NotFound);
      }
      console.log(
        `${kind}: ${sent.length} events, every table read by Delta's reader, ` +
          `bronze v${bronze.version}, ${want.alerts.ids.length} alert(s)`,
      );
    } finally {
      await assertCleanStop(gw);
      await teardown(s);
      await lake.cleanup();
    }
  });
}
