// The query routes in-process (`app.request()`), over a real DuckDB engine and a temp lake.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { LakeAlertSink } from "../lake/alerts.ts";
import { BronzeWriter } from "../lake/bronze.ts";
import { LakeEngine } from "../lake/engine/engine.ts";
import { TABLES } from "../lake/layout.ts";
import { LakeQuery, type LakeQueryOptions } from "../lake/query/query.ts";
import { silentLogger } from "../shared/logger.ts";
import { lakeOf, plantMarkerRows, replacePartition, testEvent } from "../tests/lake_helpers.ts";
import { errorHandler } from "./errors.ts";
import { queryRoutes } from "./query.ts";

const NOW = Date.parse("2026-03-10T12:00:00Z");
const MARKER = "MARKER_ROW_7f3a";

function appFor(query: LakeQuery) {
  const app = new Hono<{ Variables: { requestId: string } }>();
  app.use(requestId());
  app.onError(errorHandler(silentLogger));
  app.route("/", queryRoutes({ query }));
  return app;
}

type App = ReturnType<typeof appFor>;

/** A lake with a few events, an alert, a gold file, and marker files where nothing may read. */
async function withApp(
  fn: (app: App, ctx: { dir: string; engine: LakeEngine }) => Promise<void>,
  options: LakeQueryOptions = {},
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "query_routes_" });
  const dir = join(root, "lake");
  const engine = new LakeEngine();
  try {
    const writer = new BronzeWriter(engine, (await lakeOf(dir, engine)).bronze);
    const events = [0, 1, 2, 3, 4].map((i) =>
      testEvent({
        user_id: i % 2 ? "u2" : "u1",
        type: i === 4 ? "purchase" : "login",
        event_type: i === 4 ? "purchase" : "login",
        occurred_at: new Date(NOW - (5 - i) * 60_000).toISOString(),
        received_at: new Date(NOW - (5 - i) * 60_000 + 1000).toISOString(),
      })
    );
    await writer.write({
      topic: "wal",
      partition: 0,
      firstOffset: 0,
      lastOffset: events.length - 1,
      rows: events.map((event, offset) => ({ offset, event })),
    });
    await new LakeAlertSink(engine, (await lakeOf(dir, engine)).alerts).send([{
      alert_id: crypto.randomUUID(),
      user_id: "u1",
      raised_at: "2026-03-10T11:00:00.000000Z",
      occurred_at: "2026-03-10T11:00:00.000000Z",
      trigger_event_id: events[0]!.event_id,
      trigger_type: "login",
      rules: [{ name: "card_velocity", severity: "high", reason: "5 purchases" }],
      rule_score: 0.7,
      llm_score: null,
      fraud_score: 0.7,
      severity: "high",
      llm_disagrees: false,
      llm: { status: "disabled", reason: "off" },
      window: { events: 1, types: { login: 1 }, first_at: "x", last_at: "x" },
      event_ids: [events[0]!.event_id],
    }]);
    await replacePartition(engine, dir, TABLES.userDailyFeatures, "2026-03-09", {
      user_id: { kind: "utf8", values: ["u1"] },
      events_total: { kind: "int64", values: Float64Array.of(3) },
    });

    // Rows that must never show up: outside the lake, and inside it where the layout does not read.
    await plantMarkerRows(
      engine,
      [
        join(root, "passwd.parquet"),
        join(root, "etc", "passwd"),
        join(root, "outside", "dt=2026-03-10", "type=login", "x.parquet"),
        join(dir, "bronze", "events", "dt=2026-03-10", "type=nope", "x.parquet"),
        join(dir, "bronze", "events", "dt=2026-03-10", "stray.parquet"),
        join(dir, "alerts", "dt=2026-03-10", "not-an-alert.parquet"),
      ],
      MARKER,
      (NOW - 1000) * 1000,
    );
    const query = new LakeQuery(engine, await lakeOf(dir, engine), { now: () => NOW, ...options });
    await fn(appFor(query), { dir, engine });
  } finally {
    engine.close();
    await Deno.remove(root, { recursive: true });
  }
}

async function get(app: App, url: string) {
  const res = await app.request(url);
  const text = await res.text();
  assert.ok(!text.includes(MARKER), `${url} leaked a marker row: ${text}`);
  return { status: res.status, body: JSON.parse(text), headers: res.headers };
}

Deno.test("GET /events, /alerts, /users/:id and /stats answer their shapes", async () => {
  await withApp(async (app) => {
    const events = await get(app, "/events?limit=2");
    assert.equal(events.status, 200);
    assert.deepEqual(Object.keys(events.body), ["events", "next_cursor"]);
    assert.equal(events.body.events.length, 2);
    assert.deepEqual(Object.keys(events.body.events[0]).sort(), [
      "event_id",
      "event_type",
      "log_offset",
      "log_partition",
      "log_topic",
      "occurred_at",
      "payload",
      "received_at",
      "source",
      "type",
      "user_id",
    ]);
    assert.equal(typeof events.body.events[0].payload, "object");
    assert.equal(typeof events.body.events[0].log_offset, "number");
    assert.match(
      events.body.events[0].occurred_at,
      /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/,
    );
    const rest = await get(app, `/events?limit=2&cursor=${events.body.next_cursor}`);
    const last = await get(app, `/events?limit=2&cursor=${rest.body.next_cursor}`);
    assert.equal(last.body.events.length, 1);
    assert.equal(last.body.next_cursor, null);
    const all = [...events.body.events, ...rest.body.events, ...last.body.events];
    assert.equal(new Set(all.map((e: { event_id: string }) => e.event_id)).size, 5);

    const filtered = await get(app, "/events?user_id=u1&type=login");
    assert.equal(filtered.body.events.length, 2);

    const alerts = await get(app, "/alerts?severity=high&rule=card_velocity&user_id=u1");
    assert.equal(alerts.status, 200);
    assert.equal(alerts.body.alerts.length, 1);
    assert.deepEqual(alerts.body.alerts[0].rules, ["card_velocity"]);
    assert.equal((await get(app, "/alerts?severity=critical")).body.alerts.length, 0);

    const user = await get(app, "/users/u1");
    assert.equal(user.status, 200);
    assert.deepEqual(Object.keys(user.body), ["user_id", "recent_events", "alerts", "features"]);
    assert.equal(user.body.recent_events.length, 3);
    assert.equal(user.body.alerts.length, 1);
    assert.deepEqual(user.body.features, [{ user_id: "u1", events_total: 3, dt: "2026-03-09" }]);

    const stats = await get(app, "/stats");
    assert.equal(stats.status, 200);
    assert.equal(stats.body.total, 5);
    assert.deepEqual(stats.body.by_type, { login: 4, purchase: 1 });
    assert.equal(stats.body.by_hour.length, 24);
    assert.deepEqual(stats.body.by_hour.at(-1), { hour: "2026-03-10T11:00:00.000000Z", count: 5 });
  });
});

Deno.test("an empty lake answers empty results", async () => {
  const dir = await Deno.makeTempDir({ prefix: "query_routes_empty_" });
  const engine = new LakeEngine();
  try {
    const app = appFor(
      new LakeQuery(engine, await lakeOf(join(dir, "lake"), engine), { now: () => NOW }),
    );
    assert.deepEqual((await get(app, "/events")).body, { events: [], next_cursor: null });
    assert.deepEqual((await get(app, "/alerts")).body, { alerts: [] });
    assert.deepEqual((await get(app, "/users/u1")).body, {
      user_id: "u1",
      recent_events: [],
      alerts: [],
      features: [],
    });
    assert.equal((await get(app, "/stats")).body.total, 0);
  } finally {
    engine.close();
    await Deno.remove(dir, { recursive: true });
  }
});

const HOSTILE = [
  "'",
  '"',
  "' OR '1'='1",
  "'; DROP TABLE events; --",
  "1; SELECT * FROM read_parquet('/etc/passwd')",
  "../../etc/passwd",
  "..%2F..%2Fetc%2Fpasswd",
  "%00",
  "a%00b",
  "%ff%fe",
  "%ED%A0%80",
  "%",
  "x".repeat(5000),
  "ü😀%E2%80%94",
  "*",
  "type=*",
  "[1,2]",
  "{}",
  "null",
  "-1",
  "1.5",
  "1e309",
  "99999999999999999999",
  "2026-03-10",
  "2026-13-45T99:99:99Z",
  "NaN",
];

Deno.test("hostile values in every parameter get a 400 or an empty result, never a 500", async () => {
  await withApp(async (app) => {
    const routes: Record<string, string[]> = {
      "/events": ["user_id", "type", "from", "to", "limit", "cursor"],
      "/alerts": ["user_id", "severity", "rule", "from", "to", "limit"],
      "/stats": ["from", "to"],
    };
    for (const [route, params] of Object.entries(routes)) {
      for (const param of params) {
        for (const value of HOSTILE) {
          const url = `${route}?${param}=${
            value.includes("%") ? value : encodeURIComponent(value)
          }`;
          const { status, body } = await get(app, url);
          assert.ok(status === 400 || status === 200, `${url}: ${status} ${JSON.stringify(body)}`);
          if (status === 400) {
            assert.equal(body.error.code, "invalid_query", url);
            assert.ok(Array.isArray(body.error.issues) && body.error.issues.length > 0, url);
            assert.equal(typeof body.request_id, "string");
            for (const i of body.error.issues) {
              assert.equal(typeof i.path, "string");
              assert.equal(typeof i.message, "string");
            }
          } else {
            // Only a user_id can be any string (it then matches nobody), and a rule any name.
            assert.ok(
              param === "user_id" || (param === "rule" && /^[a-z_]+$/.test(value)),
              `${url} was accepted: ${JSON.stringify(body)}`,
            );
            assert.deepEqual(body.events ?? body.alerts, [], url);
          }
          assert.ok(!JSON.stringify(body).match(/SELECT|read_parquet|Binder|Parser|IO Error/), url);
        }
        // Arrays: a parameter given twice.
        const twice = await get(app, `${route}?${param}=a&${param}=b`);
        assert.equal(twice.status, 400, `${route} ${param} twice`);
        assert.deepEqual(twice.body.error.issues, [{ path: param, message: "must be given once" }]);
      }
      const unknown = await get(app, `${route}?nope=1`);
      assert.equal(unknown.status, 400);
      assert.deepEqual(unknown.body.error.issues, [{
        path: "nope",
        message: "unknown query parameter",
      }]);
    }
    // Ranges: from after to, over the cap, missing zone.
    for (
      const url of [
        "/events?from=2026-03-10T00:00:00Z&to=2026-03-09T00:00:00Z",
        "/stats?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
        "/alerts?from=2025-01-01T00:00:00Z",
        "/events?to=2026-03-10T00:00:00",
        "/events?limit=1001",
        "/events?limit=0",
        "/events?limit=",
        "/alerts?limit=-5",
      ]
    ) {
      assert.equal((await get(app, url)).status, 400, url);
    }
  });
});

Deno.test("GET /users/:id with hostile ids", async () => {
  await withApp(async (app) => {
    for (
      const id of [
        "..%2F..%2Fetc%2Fpasswd",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "'%3B%20DROP%20TABLE%20x%3B--",
        "u1'%20OR%20'1'%3D'1",
        "%E2%80%94%F0%9F%98%80",
        "*",
        "%ED%A0%80", // not UTF-8: Hono keeps it as the literal text
      ]
    ) {
      const { status, body } = await get(app, `/users/${id}`);
      assert.equal(status, 200, `${id}: ${JSON.stringify(body)}`);
      assert.deepEqual(body.recent_events, [], id);
      assert.deepEqual(body.alerts, [], id);
      assert.deepEqual(body.features, [], id);
    }
    for (const id of ["a%00b", "%00", "x".repeat(129), "a%0Ab", "%F0%9F%98%80".repeat(129)]) {
      const { status, body } = await get(app, `/users/${id}`);
      assert.equal(status, 400, `${id}: ${JSON.stringify(body)}`);
      assert.equal(body.error.code, "invalid_query");
    }
    assert.equal((await get(app, "/users/u1?x=1")).status, 400);
    assert.equal((await app.request("/users/a/b")).status, 404);
    assert.equal((await app.request("/users/../../etc/passwd")).status, 404);
    assert.equal((await app.request("/users/%2E%2E")).status, 404, "normalised to /");
  });
});

Deno.test("engine failures answer 500 without SQL; a full queue answers 503", async () => {
  await withApp(async (app, { dir }) => {
    void app;
    const failing = {
      query: () =>
        Promise.reject(new Error("Binder Error: SELECT secret FROM read_parquet('/lake/x')")),
    } as unknown as LakeEngine;
    const broken = appFor(new LakeQuery(failing, await lakeOf(dir, failing), { now: () => NOW }));
    // Whole hours of /stats come from the files' summaries without the engine; a range that ends
    // inside an hour holding events makes it read rows.
    const partialHour = "/stats?from=2026-03-10T11:30:00Z&to=2026-03-10T11:58:00Z";
    for (const url of ["/events", partialHour, "/users/u1"]) {
      const { status, body } = await get(broken, url);
      assert.equal(status, 500, url);
      assert.deepEqual(body.error, { code: "internal", message: "Internal error" });
      assert.ok(!JSON.stringify(body).includes("SELECT"));
    }
    let release = () => {};
    const gate = new Promise<void>((r) => release = r);
    const hanging = {
      query: async () => (await gate, []),
    } as unknown as LakeEngine;
    const busy = appFor(
      new LakeQuery(hanging, await lakeOf(dir, hanging), { now: () => NOW, maxPending: 1 }),
    );
    const first = busy.request("/events");
    await new Promise((r) => setTimeout(r, 50));
    const second = await busy.request("/stats");
    assert.equal(second.status, 503);
    assert.equal(second.headers.get("retry-after"), "1");
    assert.equal((await second.json()).error.code, "overloaded");
    release();
    assert.equal((await first).status, 200);
  });
});
