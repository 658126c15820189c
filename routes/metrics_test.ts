// In-process tests of `GET /metrics` and the HTTP metrics middleware. No server is started.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { Metrics, METRICS_CONTENT_TYPE, type PartitionLag } from "../shared/metrics.ts";
import { labelValues, sampleValue } from "../tests/metrics_helpers.ts";
import { httpMetrics, metricsRoutes, UNMATCHED_ROUTE } from "./metrics.ts";

const DURATION = "streamgate_http_request_duration_seconds";

/** An app shaped like routes/app.ts: middleware on every path, sub-apps mounted at "/". */
function app(metrics: Metrics, lagProbe?: () => Promise<PartitionLag[]>) {
  const root = new Hono();
  root.use(httpMetrics(metrics));
  root.use(requestId());
  root.onError((err, c) =>
    c.json({ error: err.message }, err instanceof HTTPException ? err.status : 500)
  );
  root.notFound((c) => c.json({ error: "not_found" }, 404));
  const users = new Hono();
  users.get("/users/:id", (c) => c.json({ id: c.req.param("id") }));
  users.post("/events", (c) => c.json({ accepted: 1 }, 202));
  users.get("/schemas/:type", (c) => {
    throw new HTTPException(404, { message: `No schema for "${c.req.param("type")}"` });
  });
  users.get("/boom", () => {
    throw new Error("kaput");
  });
  root.route("/", users);
  root.route("/", metricsRoutes({ metrics, ...(lagProbe ? { lagProbe } : {}) }));
  return root;
}

async function scrape(a: Hono): Promise<string> {
  const res = await a.request("/metrics");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), METRICS_CONTENT_TYPE);
  return await res.text();
}

Deno.test("GET /metrics serves counted events in the text format", async () => {
  const metrics = new Metrics();
  metrics.events("accepted", "http", ["purchase", "purchase"]);
  const text = await scrape(app(metrics));
  assert.match(text, /^# TYPE streamgate_events_accepted_total counter$/m);
  assert.equal(
    sampleValue(text, "streamgate_events_accepted_total", { source: "http", type: "purchase" }),
    2,
  );
});

Deno.test("httpMetrics() labels requests with the route pattern, never the raw path", async (t) => {
  const metrics = new Metrics();
  const a = app(metrics);
  for (const id of ["1", "2", "alice"]) assert.equal((await a.request(`/users/${id}`)).status, 200);
  assert.equal((await a.request("/events", { method: "POST" })).status, 202);
  assert.equal((await a.request("/schemas/nope")).status, 404);
  assert.equal((await a.request("/boom")).status, 500);
  for (const path of ["/nope", "/users/1/extra", "/wp-admin.php"]) {
    assert.equal((await a.request(path)).status, 404);
  }
  assert.equal((await a.request("/users/1", { method: "DELETE" })).status, 404);
  const text = await scrape(a);
  const count = (method: string, route: string, status: string) =>
    sampleValue(text, `${DURATION}_count`, { method, route, status });

  await t.step("a matched route is its pattern", () => {
    assert.equal(count("GET", "/users/:id", "200"), 3);
    assert.equal(count("POST", "/events", "202"), 1);
  });
  await t.step("a handler's own 404 and a thrown error keep the pattern", () => {
    assert.equal(count("GET", "/schemas/:type", "404"), 1);
    assert.equal(count("GET", "/boom", "500"), 1);
  });
  await t.step("no route is `unmatched`, whatever the path or method", () => {
    assert.equal(count("GET", UNMATCHED_ROUTE, "404"), 3);
    assert.equal(count("DELETE", UNMATCHED_ROUTE, "404"), 1);
  });
  await t.step("the route label takes only patterns", () => {
    // The scrape itself is observed after its body is built, so /metrics is not in this text.
    assert.deepEqual(labelValues(text, `${DURATION}_count`, "route"), [
      "/boom",
      "/events",
      "/schemas/:type",
      "/users/:id",
      "unmatched",
    ]);
  });
  await t.step("the histogram has its buckets", () => {
    const le = labelValues(text, `${DURATION}_bucket`, "le");
    assert.ok(le.includes("0.005") && le.includes("10") && le.includes("+Inf"), le.join());
  });
  await t.step("the next scrape shows the previous one", async () => {
    assert.equal(
      sampleValue(await scrape(a), `${DURATION}_count`, {
        method: "GET",
        route: "/metrics",
        status: "200",
      }),
      1,
    );
  });
});

Deno.test("GET /metrics reads the consumer lag through the throttled probe", async () => {
  const metrics = new Metrics();
  let calls = 0;
  let lags: PartitionLag[] = [{ topic: "events", partition: 0, lag: 42 }];
  const a = app(metrics, () => (calls++, Promise.resolve(lags)));
  let text = await scrape(a);
  assert.equal(
    sampleValue(text, "streamgate_consumer_lag", { topic: "events", partition: "0" }),
    42,
  );
  lags = [{ topic: "events", partition: 0, lag: 1 }];
  text = await scrape(a); // within the 5 s interval: the last reading again, no broker call
  assert.equal(calls, 1);
  assert.equal(
    sampleValue(text, "streamgate_consumer_lag", { topic: "events", partition: "0" }),
    42,
  );
});

Deno.test("GET /metrics answers when the lag probe fails, without a lag", async () => {
  const metrics = new Metrics();
  metrics.setLag("events", 0, 5);
  const a = app(metrics, () => Promise.reject(new Error("broker down")));
  const text = await scrape(a);
  assert.equal(
    sampleValue(text, "streamgate_consumer_lag", { topic: "events", partition: "0" }),
    undefined,
  );
  assert.ok(sampleValue(text, "process_resident_memory_bytes")! > 0);
});
