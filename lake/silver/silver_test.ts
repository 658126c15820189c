import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import {
  filesUnder,
  lakeOf,
  partitionFiles,
  storeOf,
  tableFiles,
  testEvent,
} from "../../tests/lake_helpers.ts";
import type { Envelope } from "../../shared/schemas.ts";
import { isoToMicros } from "../../shared/time.ts";
import { BronzeWriter } from "../bronze.ts";
import { LakeEngine } from "../engine/engine.ts";
import { type Domain, JOB_KEYS, SILVER_DOMAINS, sqlFileList, TABLES, userKey } from "../layout.ts";
import { runSilver, type SilverStats } from "./silver.ts";
import { toCompact } from "./write.ts";
import { readSilverProgress } from "./plan.ts";
import { castPayload, SILVER_SPECS } from "./spec.ts";
import { withLake as withLakeIn } from "../engine/testing.ts";

const withLake = (fn: (lake: string, engine: LakeEngine) => Promise<void>) =>
  withLakeIn("silver_test_", fn);

/** Writes events as one bronze batch of `wal+0` starting at `first`; returns the next offset. */
async function bronze(lake: string, engine: LakeEngine, first: number, events: Envelope[]) {
  await new BronzeWriter(engine, (await lakeOf(lake, engine)).bronze).write({
    topic: "wal",
    partition: 0,
    firstOffset: first,
    lastOffset: first + events.length - 1,
    rows: events.map((event, i) => ({ offset: first + i, event })),
  });
  return first + events.length;
}

type Row = Record<string, unknown> & {
  event_id: string;
  occurred_us: number;
  received_us: number;
  log_offset: number;
  dt: string;
};

/** Every row of a silver table, with its dt, ordered by event_id then offset. */
async function rows(engine: LakeEngine, lake: string, table: string): Promise<Row[]> {
  const files = await tableFiles(engine, lake, table);
  if (files.length === 0) return [];
  const out = await engine.query(
    `SELECT *, epoch_us(occurred_at) AS occurred_us, epoch_us(received_at) AS received_us,
            CAST(dt AS VARCHAR) AS dt
       FROM read_parquet(${sqlFileList(files)}, union_by_name = true, hive_partitioning = 1)
      ORDER BY event_id, log_offset`,
  );
  return out.map((r) =>
    ({
      ...r,
      occurred_us: Number(r.occurred_us),
      received_us: Number(r.received_us),
      log_offset: Number(r.log_offset),
      log_partition: Number(r.log_partition),
    }) as unknown as Row
  );
}

async function allSilver(engine: LakeEngine, lake: string): Promise<Row[]> {
  const out: Row[] = [];
  for (const d of SILVER_DOMAINS) out.push(...await rows(engine, lake, TABLES.silver(d)));
  return out.sort((a, b) => a.event_id < b.event_id ? -1 : 1);
}

/** Every file under silver/, with its bytes, for byte-for-byte comparisons. */
async function snapshot(lake: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const p of await filesUnder(join(lake, "silver"))) {
    const h = new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(p)));
    out.set(p, Array.from(h, (b) => b.toString(16).padStart(2, "0")).join(""));
  }
  return out;
}

const total = (s: SilverStats) => Object.values(s.rows_new).reduce((a, b) => a + b, 0);

const ev = (over: Partial<Envelope> & { type: Envelope["type"] }): Envelope =>
  testEvent({ event_type: over.type, ...over });

Deno.test("domain specs: typed columns derived from the payload schemas", () => {
  const cols = (d: Domain) =>
    Object.fromEntries(SILVER_SPECS[d].columns.map((c) => [c.name, c.sql]));
  for (const d of SILVER_DOMAINS) {
    const names = SILVER_SPECS[d].columns.map((c) => c.name);
    assert.deepEqual(names.slice(0, 9), [
      "event_id",
      "event_type",
      "user_id",
      "occurred_at",
      "received_at",
      "source",
      "log_topic",
      "log_partition",
      "log_offset",
    ]);
    // Then the payload fields; last what they leave out, the payload as sent (for the query
    // API, which answers events from silver) and the sort key.
    assert.deepEqual(names.slice(-3), ["extra", "payload", "user_key"]);
    assert.equal(new Set(names).size, names.length, `${d}: column names are unique`);
  }
  assert.equal(cols("commerce").amount, "DOUBLE");
  assert.equal(cols("commerce").items, "INTEGER");
  assert.equal(cols("commerce").quantity, "INTEGER");
  assert.equal(cols("commerce").currency, "VARCHAR");
  assert.equal(cols("usage").status_code, "INTEGER");
  assert.equal(cols("usage").latency_ms, "DOUBLE");
  assert.equal(cols("usage").bytes, "INTEGER");
  assert.equal(cols("media").duration_s, "DOUBLE");
  assert.equal(cols("sales").unit_price, "DOUBLE");
  assert.equal(cols("auth").ip, "VARCHAR");
  assert.equal(cols("auth").occurred_at, "TIMESTAMPTZ");
  assert.equal(cols("auth").log_offset, "BIGINT");
  assert.equal(cols("sales").ip, undefined, "sale takes no origin fields");
});

Deno.test("castPayload(): own fields typed, other fields to extra, reasons for the rest", () => {
  const ok = castPayload("login", "login", '{"ip":"10.0.0.1","method":"sso","reason":5,"x":[1]}');
  assert.ok(ok.ok);
  const auth = SILVER_SPECS.auth.fields.map((f) => f.name);
  assert.equal(ok.values[auth.indexOf("ip")], "10.0.0.1");
  assert.equal(ok.values[auth.indexOf("method")], "sso");
  // `reason` is a column of auth (login_failed), but not a field of login: it stays in extra.
  assert.equal(ok.values[auth.indexOf("reason")], null);
  assert.deepEqual(JSON.parse(ok.extra!), { reason: 5, x: [1] });

  const plain = castPayload("purchase", "purchase", '{"amount":12,"currency":"USD"}');
  assert.ok(plain.ok);
  assert.equal(plain.extra, null);

  const bad = (r: ReturnType<typeof castPayload>) => (assert.ok(!r.ok), r.reason);
  assert.match(bad(castPayload("other", "custom", "{}")), /^unknown_type/);
  assert.match(bad(castPayload("login", "logout", "{}")), /^type_mismatch/);
  assert.equal(bad(castPayload("login", "login", "{")), "payload_invalid_json");
  assert.equal(bad(castPayload("login", "login", "[1]")), "payload_not_object");
  assert.equal(bad(castPayload("login", "login", "null")), "payload_not_object");
  assert.match(bad(castPayload("purchase", "purchase", '{"amount":"12"}')), /payload\.amount/);
  assert.match(bad(castPayload("purchase", "purchase", '{"amount":1,"items":1.5}')), /items/);
  assert.match(
    bad(castPayload("api_call", "api_call", '{"endpoint":"/","status_code":1e10}')),
    /status_code/,
  );
});

Deno.test("engine: text with nulls, empty and non-ASCII strings and nullable ints round-trip", async () => {
  await withLake(async (lake, engine) => {
    const path = join(lake, "t.parquet");
    await engine.writeParquet({
      s: { kind: "utf8", values: ["a", null, "", "ünïcødé ✓ 𝄞", "x".repeat(3000)] },
      i: { kind: "int32_nullable", values: [1, null, -5, 2147483647, null] },
      b: { kind: "int64_nullable", values: [null, 2 ** 40, 0, -1, 7] },
      f: { kind: "float64_nullable", values: [1.5, null, 0, -2, null] },
    }, path);
    const got = await engine.query(`SELECT s, i, b, f FROM read_parquet('${path}')`);
    assert.deepEqual(got.map((r) => r.s), ["a", null, "", "ünïcødé ✓ 𝄞", "x".repeat(3000)]);
    assert.deepEqual(got.map((r) => r.i), [1, null, -5, 2147483647, null]);
    assert.deepEqual(got.map((r) => r.b === null ? null : Number(r.b)), [null, 2 ** 40, 0, -1, 7]);
    assert.deepEqual(got.map((r) => r.f), [1.5, null, 0, -2, null]);
    const cols = await engine.queryColumns(`SELECT s, i FROM read_parquet('${path}')`);
    assert.equal(cols.rows, 5);
    assert.deepEqual(cols.columns.s, ["a", null, "", "ünïcødé ✓ 𝄞", "x".repeat(3000)]);
    assert.deepEqual(cols.columns.i, [1, null, -5, 2147483647, null]);
  });
});

Deno.test("silver: typed columns, values, extra, partitions by occurred date", async () => {
  await withLake(async (lake, engine) => {
    const purchase = ev({
      type: "purchase",
      user_id: "u-1",
      occurred_at: "2026-11-20T23:59:59.999999Z",
      received_at: "2026-11-21T00:00:02.000001Z",
      payload: {
        ip: "10.0.0.9",
        country: "DE",
        amount: 12.5,
        currency: "EUR",
        items: 3,
        coupon: { code: "X" },
      },
    });
    const api = ev({
      type: "api_call",
      payload: { endpoint: "/v1/x", status_code: 503, latency_ms: 12.25, method: "GET" },
    });
    const sale = ev({
      type: "sale",
      payload: { product_id: "p", quantity: 2, unit_price: 1.25, amount: 2.5, currency: "USD" },
    });
    const tv = ev({ type: "tv_play", payload: { channel_id: "c", duration_s: 61.5 } });
    await bronze(lake, engine, 0, [purchase, api, sale, tv]);
    const stats = await runSilver(engine, await lakeOf(lake, engine));
    assert.equal(stats.rows_in, 4);
    assert.equal(stats.rows_new.commerce, 1);
    assert.equal(stats.rows_new.usage, 1);
    assert.equal(stats.rows_new.sales, 1);
    assert.equal(stats.rows_new.media, 1);
    assert.deepEqual(stats.dates, ["2026-11-20", "2026-11-23"]);

    // One file per (domain, date), typed as the spec says.
    for (const d of SILVER_DOMAINS) {
      for (const path of await tableFiles(engine, lake, TABLES.silver(d))) {
        const described = await engine.query<{ column_name: string; column_type: string }>(
          `DESCRIBE SELECT * FROM read_parquet('${path}', hive_partitioning = false)`,
        );
        assert.deepEqual(
          described.map((
            c,
          ) => [c.column_name, c.column_type.replace("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")]),
          SILVER_SPECS[d].columns.map((c) => [c.name, c.sql]),
        );
      }
    }
    const [p] = await rows(engine, lake, TABLES.silver("commerce"));
    assert.equal(p!.dt, "2026-11-20", "partitioned by the occurred date, not the received one");
    assert.equal(p!.event_id, purchase.event_id);
    assert.equal(p!.occurred_us, isoToMicros(purchase.occurred_at));
    assert.equal(p!.received_us, isoToMicros(purchase.received_at));
    assert.equal(p!.amount, 12.5);
    assert.equal(p!.items, 3);
    assert.equal(p!.currency, "EUR");
    assert.equal(p!.ip, "10.0.0.9");
    assert.equal(p!.quantity, null);
    assert.equal(p!.log_topic, "wal");
    assert.equal(p!.log_offset, 0);
    assert.deepEqual(JSON.parse(p!.extra as string), { coupon: { code: "X" } });
    const [a] = await rows(engine, lake, TABLES.silver("usage"));
    assert.equal(a!.status_code, 503);
    assert.equal(a!.latency_ms, 12.25);
    assert.equal(a!.method, "GET");
    assert.equal(a!.extra, null);
    const [s] = await rows(engine, lake, TABLES.silver("sales"));
    assert.equal(s!.quantity, 2);
    assert.equal(s!.unit_price, 1.25);
    const [t] = await rows(engine, lake, TABLES.silver("media"));
    assert.equal(t!.duration_s, 61.5);
    assert.equal(t!.station_id, null);
  });
});

Deno.test("silver: deduplicates by event_id across files, bronze days and runs", async () => {
  await withLake(async (lake, engine) => {
    const first = ev({
      type: "login",
      occurred_at: "2026-11-20T10:00:00Z",
      received_at: "2026-11-20T10:00:01Z",
      payload: { ip: "10.0.0.1" },
    });
    const other = ev({ type: "click", occurred_at: "2026-11-20T11:00:00Z" });
    let next = await bronze(lake, engine, 0, [first, other]);
    // A retry received the next day (another bronze dt), in the same run.
    next = await bronze(lake, engine, next, [{
      ...first,
      received_at: "2026-11-21T08:00:00Z",
      payload: { ip: "10.0.0.2" },
    }]);
    const s1 = await runSilver(engine, await lakeOf(lake, engine));
    assert.equal(s1.rows_in, 3);
    assert.equal(s1.duplicates, 1);
    let auth = await rows(engine, lake, TABLES.silver("auth"));
    assert.equal(auth.length, 1);
    assert.equal(auth[0]!.ip, "10.0.0.1", "the earliest received copy wins");

    // Another retry in a later run: still one row.
    next = await bronze(lake, engine, next, [{ ...first, received_at: "2026-11-22T08:00:00Z" }]);
    const s2 = await runSilver(engine, await lakeOf(lake, engine));
    assert.equal(s2.rows_in, 1);
    assert.equal(s2.duplicates, 1);
    assert.equal(total(s2), 0);
    auth = await rows(engine, lake, TABLES.silver("auth"));
    assert.equal(auth.length, 1);
    assert.equal(auth[0]!.log_offset, 0);

    // A copy that reached the log later but was received earlier (another producer) wins.
    await bronze(lake, engine, next, [{
      ...first,
      received_at: "2026-11-20T10:00:00.5Z",
      payload: { ip: "10.0.0.3" },
    }]);
    await runSilver(engine, await lakeOf(lake, engine));
    auth = await rows(engine, lake, TABLES.silver("auth"));
    assert.equal(auth.length, 1);
    assert.equal(auth[0]!.ip, "10.0.0.3");
    assert.equal(auth[0]!.log_offset, next);
  });
});

Deno.test("silver: one event_id under two dates or domains in one run keeps one row", async () => {
  await withLake(async (lake, engine) => {
    const a = ev({
      type: "login",
      occurred_at: "2026-11-20T10:00:00Z",
      received_at: "2026-11-20T10:00:01Z",
    });
    const sameIdOtherDay = {
      ...a,
      occurred_at: "2026-11-19T10:00:00Z",
      received_at: "2026-11-20T10:00:02Z",
    };
    const sameIdOtherDomain = {
      ...a,
      type: "click" as const,
      event_type: "click",
      received_at: "2026-11-20T10:00:03Z",
    };
    await bronze(lake, engine, 0, [sameIdOtherDomain, sameIdOtherDay, a]);
    const s = await runSilver(engine, await lakeOf(lake, engine));
    assert.equal(s.duplicates, 2);
    const all = await allSilver(engine, lake);
    assert.equal(all.length, 1);
    assert.equal(all[0]!.dt, "2026-11-20");
    assert.equal(all[0]!.event_type, "login");
  });
});

Deno.test("silver: an event_id re-sent days later under another date or type is held once", async () => {
  await withLake(async (lake, engine) => {
    const first = ev({
      type: "login",
      occurred_at: "2026-11-20T10:00:00Z",
      received_at: "2026-11-20T10:00:01Z",
    });
    let next = await bronze(lake, engine, 0, [first]);
    await runSilver(engine, await lakeOf(lake, engine));
    // Three days later, in later runs: the same id with another occurred date, then another
    // type (another domain), then both.
    const copies: Envelope[] = [
      { ...first, occurred_at: "2026-11-22T09:00:00Z", received_at: "2026-11-23T09:00:00Z" },
      {
        ...first,
        type: "click",
        event_type: "click",
        payload: {},
        received_at: "2026-11-23T09:30:00Z",
      },
      {
        ...first,
        type: "purchase",
        event_type: "purchase",
        payload: { amount: 9 },
        occurred_at: "2026-11-23T10:00:00Z",
        received_at: "2026-11-23T10:00:01Z",
      },
    ];
    for (const copy of copies) {
      next = await bronze(lake, engine, next, [copy]);
      const s = await runSilver(engine, await lakeOf(lake, engine));
      assert.equal(s.rows_in, 1);
      assert.equal(s.duplicates, 1, `${copy.type} on ${copy.occurred_at} is a copy`);
    }
    const all = await allSilver(engine, lake);
    assert.equal(all.length, 1);
    assert.equal(all[0]!.dt, "2026-11-20");
    assert.equal(all[0]!.event_type, "login");
    assert.equal(all[0]!.log_offset, 0);
  });
});

Deno.test("silver: a rerun does nothing; files, bytes and progress stay the same", async () => {
  await withLake(async (lake, engine) => {
    const events = Array.from({ length: 30 }, (_, i) =>
      ev({
        type: (["login", "purchase", "page_view", "radio_play", "sale"] as const)[i % 5]!,
        user_id: `u${i % 4}`,
        occurred_at: `2026-11-${20 + (i % 3)}T10:00:00Z`,
        payload: i % 5 === 1
          ? { amount: i }
          : i % 5 === 2
          ? { page: "/" }
          : i % 5 === 3
          ? { station_id: "s" }
          : i % 5 === 4
          ? { product_id: "p", quantity: 1, unit_price: 1, amount: 1 }
          : {},
      }));
    await bronze(lake, engine, 0, events);
    const first = await runSilver(engine, await lakeOf(lake, engine));
    assert.equal(total(first), 30);
    const before = await snapshot(lake);
    const progress = await Deno.readTextFile(join(lake, JOB_KEYS.silverProgress));
    const again = await runSilver(engine, await lakeOf(lake, engine));
    assert.equal(again.files_read, 0);
    assert.equal(again.rows_in, 0);
    assert.equal(again.partitions_rewritten, 0);
    assert.deepEqual(again.dates, []);
    assert.deepEqual(await snapshot(lake), before);
    assert.equal(await Deno.readTextFile(join(lake, JOB_KEYS.silverProgress)), progress);
  });
});

Deno.test("silver: a crash before progress is written, then a rerun, gives the same rows", async () => {
  await withLake(async (lake, engine) => {
    const events = Array.from({ length: 20 }, (_, i) =>
      ev({
        type: i % 2 ? "login" : "click",
        user_id: `u${i}`,
        occurred_at: `2026-11-2${i % 3}T10:00:00Z`,
      }));
    const next = await bronze(lake, engine, 0, events.slice(0, 10));
    await runSilver(engine, await lakeOf(lake, engine));
    const progress = await readSilverProgress(await storeOf(lake));
    await bronze(lake, engine, next, [...events.slice(10), events[0]!, events[11]!]);
    await assert.rejects(
      runSilver(engine, await lakeOf(lake, engine), {
        beforeProgress: () => {
          throw new Error("crash");
        },
      }),
      /crash/,
    );
    assert.deepEqual(
      await readSilverProgress(await storeOf(lake)),
      progress,
      "progress is written last",
    );
    const crashed = await allSilver(engine, lake);
    assert.equal(crashed.length, 20, "partitions were already replaced whole");

    const rerun = await runSilver(engine, await lakeOf(lake, engine));
    assert.equal(rerun.rows_in, 12, "the same batch is read again");
    assert.equal(total(rerun), 0, "and adds nothing");
    const after = await allSilver(engine, lake);
    assert.deepEqual(after, crashed);
    assert.equal(new Set(after.map((r) => r.event_id)).size, 20);
    assert.equal((await readSilverProgress(await storeOf(lake))).watermarks["wal+0"], 22);
    // A run stages outside the lake: nothing of it is left there, crashed or not.
    await assert.rejects(Deno.stat(join(lake, "_staging", "silver")), Deno.errors.NotFound);
  });
});

Deno.test("silver: a late event lands in its occurred-date partition on the next run", async () => {
  await withLake(async (lake, engine) => {
    const next = await bronze(lake, engine, 0, [
      ev({
        type: "login",
        occurred_at: "2026-11-18T09:00:00Z",
        received_at: "2026-11-18T09:00:01Z",
      }),
      ev({
        type: "login",
        occurred_at: "2026-11-23T09:00:00Z",
        received_at: "2026-11-23T09:00:01Z",
      }),
    ]);
    await runSilver(engine, await lakeOf(lake, engine));
    const auth18 = async () =>
      (await partitionFiles(engine, lake, TABLES.silver("auth"))).get("2026-11-18");
    const auth23 = async () =>
      (await partitionFiles(engine, lake, TABLES.silver("auth"))).get("2026-11-23");
    const old = await auth18();
    const today = await auth23();
    const late = ev({
      type: "logout",
      occurred_at: "2026-11-18T22:00:00Z",
      received_at: "2026-11-23T12:00:00Z",
    });
    await bronze(lake, engine, next, [late]);
    const s = await runSilver(engine, await lakeOf(lake, engine));
    assert.deepEqual(s.dates, ["2026-11-18"]);
    assert.equal(s.partitions_rewritten, 1);
    const auth = await rows(engine, lake, TABLES.silver("auth"));
    const got = auth.find((r) => r.event_id === late.event_id)!;
    assert.equal(got.dt, "2026-11-18");
    assert.equal(
      (await rows(engine, lake, TABLES.silver("auth"))).filter((r) => r.dt === "2026-11-18").length,
      2,
    );
    assert.deepEqual(await auth23(), today, "the untouched partition was not rewritten");
    assert.notDeepEqual(await auth18(), old, "the late event's partition was");
    // Each file sorted by user_id, then occurred_at: a reader of one user skips row groups.
    for (
      const file of (await tableFiles(engine, lake, TABLES.silver("auth")))
        .filter((p) => p.includes("dt=2026-11-18"))
    ) {
      const order = await engine.query<{ u: string; t: bigint }>(
        `SELECT user_id AS u, epoch_us(occurred_at) AS t FROM read_parquet('${file}')`,
      );
      const keys = order.map((r) => [r.u, Number(r.t)] as const);
      const sorted = [...keys].sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]);
      assert.deepEqual(keys, sorted);
    }
    const progress = await readSilverProgress(await storeOf(lake));
    assert.equal(progress.dates["2026-11-18"], 2);
    assert.equal(progress.dates["2026-11-23"], 1);
  });
});

Deno.test("silver: compaction keeps every row (rows in = silver + rejects + duplicates)", async () => {
  await withLake(async (lake, engine) => {
    const types = ["login", "purchase", "page_view", "api_call", "tv_play", "sale"] as const;
    const payload = (t: (typeof types)[number], i: number): Record<string, unknown> =>
      ({
        login: { ip: `10.0.0.${i % 7}` },
        purchase: { amount: i },
        page_view: { page: `/p${i}` },
        api_call: { endpoint: "/e", status_code: 200 + i },
        tv_play: { channel_id: "c" },
        sale: { product_id: "p", quantity: 1, unit_price: 2, amount: 2 },
      })[t];
    let next = 0, written = 0;
    const seen: Envelope[] = [];
    for (let b = 0; b < 6; b++) {
      const batch: Envelope[] = [];
      for (let i = 0; i < 25; i++) {
        const t = types[(b + i) % types.length]!;
        batch.push(ev({
          type: t,
          user_id: `u${i % 5}`,
          occurred_at: `2026-11-${String(18 + ((b + i) % 4)).padStart(2, "0")}T${
            String(i % 24).padStart(2, "0")
          }:00:00Z`,
          received_at: `2026-11-${18 + b}T12:00:00Z`,
          payload: payload(t, i),
        }));
      }
      if (b > 0) batch.push({ ...seen[b * 3]!, received_at: `2026-11-${18 + b}T13:00:00Z` });
      batch.push(ev({ type: "other", event_type: "custom", payload: { a: 1 } }));
      seen.push(...batch);
      written += batch.length;
      next = await bronze(lake, engine, next, batch);
    }
    const s = await runSilver(engine, await lakeOf(lake, engine));
    assert.equal(s.rows_in, written);
    assert.equal(s.duplicates, 5);
    assert.equal(s.rejects_new, 6);
    assert.equal(total(s) + s.rejects_new + s.duplicates, s.rows_in);
    const silver = await allSilver(engine, lake);
    assert.equal(silver.length, total(s));
    assert.equal(new Set(silver.map((r) => r.event_id)).size, silver.length);
    // One live file per partition, nothing else.
    for (const d of [...SILVER_DOMAINS.map((d) => TABLES.silver(d)), TABLES.silverRejects]) {
      for (const [dt, files] of await partitionFiles(engine, lake, d)) {
        assert.equal(files.length, 1, `${d} dt=${dt}: ${files}`);
      }
    }
    for (const r of silver) {
      assert.equal(r.dt, new Date(r.occurred_us / 1000).toISOString().slice(0, 10));
    }
  });
});

Deno.test("silver: rejects carry a reason and the raw payload", async () => {
  await withLake(async (lake, engine) => {
    const other = ev({ type: "other", event_type: "thing_happened", payload: { a: 1 } });
    const wrong = ev({ type: "purchase", payload: { amount: "12" } });
    const notObject = {
      ...ev({ type: "login" }),
      payload: [1, 2] as unknown as Record<string, unknown>,
    };
    const good = ev({ type: "login" });
    await bronze(lake, engine, 0, [other, wrong, notObject, good]);
    const s = await runSilver(engine, await lakeOf(lake, engine));
    assert.equal(s.rejects_new, 3);
    assert.equal(total(s), 1);
    const rejects = await rows(engine, lake, TABLES.silverRejects);
    const reasons = Object.fromEntries(rejects.map((r) => [r.event_id, r.reason]));
    assert.match(reasons[other.event_id] as string, /^unknown_type: "thing_happened"/);
    assert.match(reasons[wrong.event_id] as string, /^field_type: payload\.amount/);
    assert.equal(reasons[notObject.event_id], "payload_not_object");
    const r = rejects.find((r) => r.event_id === other.event_id)!;
    assert.equal(r.bronze_type, "other");
    assert.equal(r.event_type, "thing_happened");
    assert.deepEqual(JSON.parse(r.payload as string), { a: 1 });
    // A rerun of the same bronze (crash replay) does not duplicate rejects.
    await Deno.remove(join(lake, JOB_KEYS.silverProgress));
    const again = await runSilver(engine, await lakeOf(lake, engine));
    assert.equal(again.rejects_new, 0);
    assert.equal((await rows(engine, lake, TABLES.silverRejects)).length, 3);
  });
});

Deno.test("silver: bronze files no commit names (a crash mid-write) are not read", async () => {
  await withLake(async (lake, engine) => {
    const a = ev({ type: "login" }), b = ev({ type: "login" });
    const next = await bronze(lake, engine, 0, [a]);
    // Batch 2's file is in bronze's directory, but no commit of bronze's log names it.
    const [committed] = await tableFiles(engine, lake, TABLES.bronze);
    const orphan = join(
      dirname(committed!),
      `wal+0+${String(next).padStart(20, "0")}+${String(next).padStart(20, "0")}-00000000.parquet`,
    );
    await Deno.copyFile(committed!, orphan);
    const s1 = await runSilver(engine, await lakeOf(lake, engine));
    assert.equal(s1.rows_in, 1);
    assert.deepEqual((await allSilver(engine, lake)).map((r) => r.event_id), [a.event_id]);
    assert.equal((await readSilverProgress(await storeOf(lake))).watermarks["wal+0"], next);
    await bronze(lake, engine, next, [b]);
    const s2 = await runSilver(engine, await lakeOf(lake, engine));
    assert.equal(s2.rows_in, 1);
    assert.equal((await allSilver(engine, lake)).length, 2);
  });
});

Deno.test("silver: a run reads whole batches up to its budget; the next run the rest", async () => {
  await withLake(async (lake, engine) => {
    let next = 0;
    for (let b = 0; b < 4; b++) {
      next = await bronze(
        lake,
        engine,
        next,
        Array.from({ length: 10 }, () => ev({ type: "click" })),
      );
    }
    const s1 = await runSilver(engine, await lakeOf(lake, engine), {
      maxRowsPerRun: 25,
      readRows: 10,
    });
    assert.equal(s1.batches_read, 2);
    assert.equal(s1.rows_in, 20);
    assert.equal(s1.more, true);
    const s2 = await runSilver(engine, await lakeOf(lake, engine), { maxRowsPerRun: 25 });
    assert.equal(s2.rows_in, 20);
    assert.equal(s2.more, false);
    assert.equal((await allSilver(engine, lake)).length, 40);
    assert.equal((await runSilver(engine, await lakeOf(lake, engine))).rows_in, 0);
  });
});

Deno.test("silver: small scans (file caps, chunked merges) give the same tables", async () => {
  await withLake(async (lake, engine) => {
    let next = 0;
    const all: Envelope[] = [];
    for (let b = 0; b < 5; b++) {
      const batch = Array.from({ length: 12 }, (_, i) =>
        ev({
          type: (["login", "click", "radio_play", "purchase"] as const)[(b + i) % 4]!,
          user_id: `u${i % 3}`,
          occurred_at: `2026-11-2${i % 3}T0${b}:00:00Z`,
          payload: (b + i) % 4 === 3 ? { amount: i } : (b + i) % 4 === 2 ? { station_id: "s" } : {},
        }));
      if (b > 0) batch.push({ ...all[b]!, received_at: "2026-11-23T23:00:00Z" });
      all.push(...batch);
      next = await bronze(lake, engine, next, batch);
    }
    // Two runs (the second merges into existing partitions), at most 2 files per scan.
    const small = { maxFilesPerRead: 2, readRows: 7 };
    await runSilver(engine, await lakeOf(lake, engine), { ...small, maxRowsPerRun: 30 });
    const s2 = await runSilver(engine, await lakeOf(lake, engine), small);
    assert.equal(s2.more, false);
    const got = await allSilver(engine, lake);
    assert.equal(got.length, 60);

    await Deno.remove(join(lake, "silver"), { recursive: true });
    await Deno.remove(join(lake, JOB_KEYS.silverProgress));
    await runSilver(engine, await lakeOf(lake, engine));
    assert.deepEqual(await allSilver(engine, lake), got);
  });
});

Deno.test("silver: two engines (shards by event_id) give the tables one engine gives", async () => {
  await withLake(async (lake, engine) => {
    const second = new LakeEngine();
    try {
      const types = ["login", "click", "radio_play", "purchase", "page_view"] as const;
      const made: Envelope[] = [];
      let next = 0;
      for (let run = 0; run < 4; run++) {
        const batch = Array.from({ length: 40 }, (_, i) => {
          const type = types[(run + i) % types.length]!;
          return ev({
            type,
            user_id: `u${i % 7}`,
            occurred_at: `2026-11-2${(run + i) % 3}T0${i % 10}:00:00Z`,
            received_at: `2026-11-23T0${run}:00:00Z`,
            payload: type === "purchase"
              ? { amount: i }
              : type === "radio_play"
              ? { station_id: `s${i}` }
              : {},
          });
        });
        // Copies of earlier events: later ones (dropped), and ones received before the copy
        // silver holds (which beat it: its partition is rewritten without it).
        for (const old of made.slice(0, 6 * run)) {
          batch.push({ ...old, received_at: "2026-11-23T09:00:00Z" });
        }
        for (const old of made.slice(6 * run, 6 * run + 3)) {
          batch.push({ ...old, received_at: "2026-11-22T00:00:00Z", user_id: "beaten" });
        }
        made.push(...batch.slice(0, 40));
        next = await bronze(lake, engine, next, batch);
        // A small compaction limit, so partitions are rewritten as well as appended to.
        await runSilver([engine, second], await lakeOf(lake, engine), { maxFilesPerPartition: 3 });
      }
      const sharded = await allSilver(engine, lake);
      assert.equal(sharded.length, 160, "every event once");
      assert.equal(sharded.filter((r) => r.user_id === "beaten").length, 9);

      await Deno.remove(join(lake, "silver"), { recursive: true });
      await Deno.remove(join(lake, JOB_KEYS.silverProgress));
      await runSilver(engine, await lakeOf(lake, engine));
      assert.deepEqual(await allSilver(engine, lake), sharded);
    } finally {
      second.close();
    }
  });
});

Deno.test("silver: files are sorted by user_key, the user's hash, so one user's rows sit together", async () => {
  await withLake(async (lake, engine) => {
    // Ids sharing a long prefix: string statistics (an 8-byte prefix in DuckDB) cannot tell them
    // apart; the integer key can.
    const events = Array.from({ length: 300 }, (_, i) =>
      ev({
        type: "click",
        user_id: `customer-000000${i % 30}`,
        occurred_at: `2026-11-20T${String(i % 24).padStart(2, "0")}:00:00Z`,
      }));
    await bronze(lake, engine, 0, events);
    await runSilver(engine, await lakeOf(lake, engine));
    const files = (await partitionFiles(engine, lake, TABLES.silver("usage"))).get("2026-11-20");
    assert.equal(files?.length, 1);
    const file = join(lake, TABLES.silver("usage"), files![0]!);
    const got = await engine.query<{ user_id: string; user_key: number; occurred_us: bigint }>(
      `SELECT user_id, user_key, epoch_us(occurred_at) AS occurred_us FROM read_parquet('${file}')`,
    );
    assert.equal(got.length, 300);
    for (const r of got) assert.equal(r.user_key, userKey(r.user_id));
    const order = got.map((r) => [r.user_key, r.user_id, r.occurred_us] as const);
    const sorted = [...order].sort((a, b) =>
      a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0) || Number(a[2] - b[2])
    );
    assert.deepEqual(order, sorted);
    assert.equal(new Set(got.map((r) => r.user_key)).size, 30, "30 users, 30 keys");
  });
});

Deno.test("toCompact(): nothing under the limit, the small files first, everything once they weigh", () => {
  const f = (key: string, size: number) => ({ key, size });
  assert.equal(toCompact([f("a", 100), f("b", 5)], 2, 4), undefined);
  assert.deepEqual(toCompact([f("a", 100), f("b", 5), f("c", 7)], 2, 4)?.map((x) => x.key), [
    "c",
    "b",
  ]);
  assert.deepEqual(
    toCompact([f("a", 100), f("b", 30), f("c", 25)], 2, 4)?.map((x) => x.key),
    ["a", "b", "c"],
  );
  assert.deepEqual(toCompact([], 3, 2), []);
});

Deno.test("toCompact(): a merge never reads more than its byte budget, and big files stay", () => {
  const f = (key: string, size: number) => ({ key, size });
  // Files of the budget or more never merge; the rest merge smallest first, under the budget.
  assert.deepEqual(
    toCompact([f("big1", 500), f("big2", 400), f("a", 60), f("b", 50), f("c", 40)], 2, 4, 120)
      ?.map((x) => x.key),
    ["b", "c"],
  );
  // Only big files: nothing to merge, the new files are appended beside them.
  assert.deepEqual(toCompact([f("big1", 500), f("big2", 400), f("big3", 300)], 2, 4, 120), []);
  // Within the budget the size tiers apply as before.
  assert.deepEqual(
    toCompact([f("a", 100), f("b", 5), f("c", 7)], 2, 4, 1000)?.map((x) => x.key),
    ["c", "b"],
  );
});

Deno.test("silver: small runs keep a partition within its file limit and leave its big file be", async () => {
  await withLake(async (lake, engine) => {
    const day = (i: number, type: "click" | "page_view" = "click") =>
      ev({
        type,
        user_id: `u${i % 40}`,
        occurred_at: `2026-11-20T${String(i % 24).padStart(2, "0")}:0${i % 10}:00Z`,
        received_at: "2026-11-20T23:00:00Z",
        payload: { page: `/p/${i}` },
      });
    let next = await bronze(lake, engine, 0, Array.from({ length: 600 }, (_, i) => day(i)));
    await runSilver(engine, await lakeOf(lake, engine));
    const usage = TABLES.silver("usage");
    const [big] = (await partitionFiles(engine, lake, usage)).get("2026-11-20")!;
    let rowsIn = 600;
    for (let run = 0; run < 8; run++) {
      const batch = Array.from({ length: 3 }, (_, i) => day(1000 + run * 3 + i, "page_view"));
      next = await bronze(lake, engine, next, batch);
      rowsIn += batch.length;
      await runSilver(engine, await lakeOf(lake, engine));
      const files = (await partitionFiles(engine, lake, usage)).get("2026-11-20")!;
      assert.ok(files.length <= 4, `run ${run}: ${files.length} files`);
      assert.ok(files.includes(big!), `run ${run}: the day's big file is not rewritten`);
    }
    const rows = await allSilver(engine, lake);
    assert.equal(rows.length, rowsIn);
    assert.equal(new Set(rows.map((r) => r.event_id)).size, rowsIn);
  });
});
