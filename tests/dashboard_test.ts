/**
 * The dashboard (`GET /`) in a real headless browser: Debian's `chromium` package driven by
 * playwright-core with `executablePath` (browser downloads do not work here). playwright-core runs
 * under Deno's npm compatibility as is: `chromium.launch()` talks to the browser over the pipe it
 * spawns it with.
 *
 * The browser test runs the page against an in-process Hono app: `dashboardRoutes()` plus a fake
 * `/metrics` whose counters grow with every scrape and a fake `/alerts`. The same checks against
 * the real gateway process are in the last test.
 *
 * No Chromium: in CI (`CI=true`) the browser tests fail; elsewhere they are skipped with a message.
 * The screenshot goes to `tests/artifacts/dashboard.png`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hono } from "hono";
import type { Browser, Page } from "playwright-core";
import { DASHBOARD_CSP, dashboardRoutes } from "../routes/dashboard.ts";
import { launchBrowser, skipBrowser } from "./browser.ts";
import { clientEvent, postEvents, startGateway } from "./gateway_process.ts";

const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
// The callbacks given to page.evaluate() and waitForFunction() run in the page, where the DOM is.
// Deno type-checks without the DOM lib, and `/// <reference lib="dom" />` would apply to every
// file checked together with this one (it breaks tests/gateway_process.ts), hence this one `any`.
// deno-lint-ignore no-explicit-any
declare const document: any;

/** A user id that runs script if anything inserts it as markup. */
const XSS_USER = "<img src=x onerror=alert(1)>";

const SKIP_BROWSER = skipBrowser("dashboard_test");

/** A page with everything that would mean a broken or unsafe page recorded. */
interface WatchedPage {
  page: Page;
  /** Console errors (CSP violations land here), uncaught exceptions. */
  problems: string[];
  /** `alert()` dialogs: any one means injected markup ran. */
  dialogs: string[];
}

async function openDashboard(browser: Browser, url: string): Promise<WatchedPage> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const problems: string[] = [];
  const dialogs: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console.error: ${m.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  const res = await page.goto(url);
  assert.equal(res?.status(), 200);
  return { page, problems, dialogs };
}

/** Text of the accepted/s cell of a type's row, or null while the row is not there. */
function acceptedRate(page: Page, type: string): Promise<number> {
  return page.evaluate((type) => {
    for (const tr of document.querySelectorAll("#types-body tr")) {
      if (tr.dataset.type === type) {
        return Number(tr.querySelector(".rate-accepted")?.textContent?.replace(/,/g, "") ?? NaN);
      }
    }
    return NaN;
  }, type);
}

/**
 * The checks both browser tests make: throughput for `type` shows up, the alert of
 * {@link XSS_USER} is listed as text with nothing injected, the chart has lines, no CSP violation
 * or script error happened. Saves a screenshot.
 */
async function expectLiveDashboard(
  watched: WatchedPage,
  type: string,
  timeoutMs: number,
): Promise<Record<string, number>> {
  try {
    return await checkLiveDashboard(watched, type, timeoutMs);
  } catch (err) {
    const seen = await pageState(watched.page).catch((e) => `(unreadable: ${e})`);
    throw new Error(
      `Checking the dashboard failed: ${(err as Error).message}\nThe page showed: ${seen}\n` +
        `Page problems: ${JSON.stringify(watched.problems)}`,
      { cause: err },
    );
  }
}

/** What the page shows, for a failure message. */
function pageState(page: Page): Promise<string> {
  return page.evaluate(() =>
    JSON.stringify({
      metrics: document.getElementById("metrics-status")?.textContent,
      alerts: document.getElementById("alerts-status")?.textContent,
      updated: document.getElementById("updated")?.textContent,
      hidden: document.hidden,
      points: document.getElementById("chart")?.dataset.points,
      types: [...document.querySelectorAll("#types-body tr")].map((tr) => tr.textContent),
      alertRows: [...document.querySelectorAll("#alerts-body tr")].map((tr) => tr.textContent),
      alertsNote: document.getElementById("alerts-note")?.textContent,
    })
  );
}

async function checkLiveDashboard(
  { page, problems, dialogs }: WatchedPage,
  type: string,
  timeoutMs: number,
): Promise<Record<string, number>> {
  const started = performance.now();
  await page.waitForFunction(
    (type) =>
      [...document.querySelectorAll("#types-body tr")].some((tr) =>
        tr.dataset.type === type &&
        Number(tr.querySelector(".rate-accepted")?.textContent?.replace(/,/g, "")) > 0
      ),
    type,
    { timeout: timeoutMs, polling: 100 },
  );
  const throughputMs = performance.now() - started;
  assert.ok(await acceptedRate(page, type) > 0);

  await page.waitForFunction(
    (user) =>
      [...document.querySelectorAll("#alerts-body td.user")].some((td) => td.textContent === user),
    XSS_USER,
    { timeout: timeoutMs, polling: 100 },
  );
  const alertsMs = performance.now() - started;
  // The user id is text, not an element: no <img> anywhere, no alert() ran.
  assert.equal(await page.locator("img").count(), 0);
  assert.deepEqual(dialogs, []);

  // Let at least one more poll land so every series has two points to draw between.
  await page.waitForFunction(() => Number(document.getElementById("chart")?.dataset.points) >= 3, {
    timeout: timeoutMs,
    polling: 100,
  });
  const chart = await page.evaluate(() => {
    const canvas = document.getElementById("chart");
    const { data } = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height);
    // Series are saturated colours; grid lines and labels are greys.
    let coloured = 0;
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b, a] = [data[i]!, data[i + 1]!, data[i + 2]!, data[i + 3]!];
      if (a > 200 && Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
    }
    return {
      width: canvas.clientWidth,
      height: canvas.clientHeight,
      series: Number(canvas.dataset.series),
      coloured,
      legend: document.getElementById("legend")!.children.length,
    };
  });
  assert.ok(chart.width > 300 && chart.height > 100, `chart is ${chart.width}x${chart.height}`);
  assert.ok(chart.series >= 1, "no series on the chart");
  assert.ok(chart.coloured > 40, `only ${chart.coloured} coloured pixels on the chart`);
  assert.equal(chart.legend, chart.series + 1); // + rejected

  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
  assert.deepEqual(problems, [], "the page logged errors (a CSP violation, a script error)");
  return { throughputMs: Math.round(throughputMs), alertsMs: Math.round(alertsMs) };
}

// ---------------------------------------------------------------------------------------------
// In-process: the route and its headers

Deno.test("dashboardRoutes() serves GET / with a CSP that allows only its own script and style", async () => {
  const app = dashboardRoutes();
  const res = await app.request("/");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  const csp = res.headers.get("content-security-policy") ?? "";
  assert.equal(csp, DASHBOARD_CSP);
  assert.ok(!csp.includes("unsafe-inline") && !csp.includes("unsafe-eval"), csp);
  assert.match(csp, /default-src 'self'/);

  const html = await res.text();
  const sha = (s: string) => `'sha256-${createHash("sha256").update(s).digest("base64")}'`;
  const inline = (tag: string) => [...html.matchAll(new RegExp(`<${tag}>([^]*?)</${tag}>`, "g"))];
  assert.equal(inline("script").length, 1);
  assert.equal(inline("style").length, 1);
  const directives = csp.split("; ");
  assert.ok(directives.includes(`script-src ${sha(inline("script")[0]![1]!)}`), csp);
  assert.ok(directives.includes(`style-src ${sha(inline("style")[0]![1]!)}`), csp);
  // Self-contained: nothing loaded from another origin, no inline handlers or style attributes.
  assert.doesNotMatch(html, /\b(src|href)="(https?:)?\/\//);
  assert.doesNotMatch(html, /\son[a-z]+=|\sstyle=/);
  assert.match(html, /data-poll-ms="2000" data-alert-limit="10"/);
});

Deno.test("dashboardRoutes() answers nothing but GET /, and rejects bad options", async () => {
  const app = dashboardRoutes();
  assert.equal((await app.request("/", { method: "HEAD" })).status, 200);
  for (const [method, path] of [["POST", "/"], ["GET", "/metrics"], ["GET", "/alerts"]]) {
    const res = await app.request(path!, { method: method! });
    assert.equal(res.status, 404, `${method} ${path}`);
    await res.body?.cancel();
  }
  assert.throws(() => dashboardRoutes({ pollIntervalMs: 10 }), RangeError);
  assert.throws(() => dashboardRoutes({ alertLimit: 1.5 }), RangeError);
  assert.match(
    await (await dashboardRoutes({ pollIntervalMs: 500, alertLimit: 3 }).request("/")).text(),
    /data-poll-ms="500" data-alert-limit="3"/,
  );
});

// ---------------------------------------------------------------------------------------------
// In a browser, against fakes of /metrics and /alerts

/** Prometheus text whose counters grow with `n`, with the escapes and extras the format allows. */
function fakeMetrics(n: number): string {
  return [
    "# HELP streamgate_events_received_total Events received, by source and type.",
    "# TYPE streamgate_events_received_total counter",
    `streamgate_events_received_total{source="http",type="purchase"} ${14 * n}`,
    `streamgate_events_received_total{source="kafka",type="purchase"} ${3 * n}`,
    `streamgate_events_received_total{source="http",type="login"} ${5 * n}`,
    "# TYPE streamgate_events_accepted_total counter",
    `streamgate_events_accepted_total{source="http",type="purchase"} ${12 * n}`,
    `streamgate_events_accepted_total{source="kafka",type="purchase"} ${3 * n}`,
    `streamgate_events_accepted_total{source="http",type="login"} ${5 * n}`,
    // A label value with both escapes; a type that no client sends, for the parser's sake.
    `streamgate_events_accepted_total{source="http",type="we\\"ird\\\\type"} ${n}`,
    `streamgate_events_rejected_total{source="http",type="purchase"} ${2 * n}`,
    `streamgate_dead_letters_total{source="http"} ${2 * n}`,
    `streamgate_consumer_lag{topic="events",partition="0"} 7`,
    `streamgate_consumer_lag{topic="events",partition="1"} 3`,
    `streamgate_fraud_alerts_total{rule="high_value_purchase",severity="medium"} 4`,
    // A sample with a timestamp; a value in exponent notation.
    `streamgate_lake_rows_written_total ${20 * n} 1767225600000`,
    "process_resident_memory_bytes 5.24288e+07",
    "",
  ].join("\n");
}

function fakeAlert(overrides: Record<string, unknown>): Record<string, unknown> {
  const now = new Date().toISOString();
  return {
    alert_id: crypto.randomUUID(),
    user_id: "user-1",
    raised_at: now,
    occurred_at: now,
    trigger_event_id: crypto.randomUUID(),
    trigger_type: "purchase",
    rule_score: 0.5,
    fraud_score: 0.9,
    severity: "medium",
    rules: ["high_value_purchase"],
    reasons: [],
    llm_status: "ok",
    llm_score: 0.9,
    llm_disagrees: false,
    llm_verdict: "fraud",
    llm_rationale: '"><script>alert(2)</script>',
    window_summary: {},
    event_ids: [],
    degraded: null,
    ...overrides,
  };
}

/** `dashboardRoutes()` plus fake `/metrics` and `/alerts`, served on an ephemeral port. */
function fakeGateway() {
  let scrapes = 0;
  let down = false;
  const alertLimits: (string | undefined)[] = [];
  const app = new Hono();
  app.route("/", dashboardRoutes({ pollIntervalMs: 500 }));
  app.get("/metrics", (c) => {
    if (down) return c.text("unavailable", 503);
    return c.text(fakeMetrics(++scrapes), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  });
  app.get("/alerts", (c) => {
    alertLimits.push(c.req.query("limit"));
    // What a role without the query API answers.
    if (down) return c.json({ error: { code: "not_found", message: "No route" } }, 404);
    return c.json({
      alerts: [
        fakeAlert({ user_id: XSS_USER, severity: "high", rules: ["high_value_purchase", "<b>x"] }),
        // What an obeying model leaves: the rules' score stands, the alert says the LLM disagrees.
        fakeAlert({
          severity: "</td><img src=x onerror=alert(3)>",
          rule_score: 0.9,
          llm_score: 0,
          fraud_score: 0.9,
          llm_verdict: "legitimate",
          llm_disagrees: true,
        }),
        fakeAlert({ llm_status: "skipped", llm_score: null, llm_verdict: null, fraud_score: 0.5 }),
      ],
    });
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  return {
    url: `http://127.0.0.1:${server.addr.port}/`,
    alertLimits,
    goDown: () => down = true,
    close: () => server.shutdown(),
  };
}

Deno.test({
  name: "dashboard page in headless Chromium shows throughput, alerts as text and a chart",
  ignore: SKIP_BROWSER,
  async fn(t) {
    const timings: Record<string, number> = {};
    let started = performance.now();
    const browser = await launchBrowser();
    timings.launchMs = Math.round(performance.now() - started);
    const fake = fakeGateway();
    try {
      started = performance.now();
      const watched = await openDashboard(browser, fake.url);
      const { page } = watched;
      timings.loadMs = Math.round(performance.now() - started);

      await t.step("shows live numbers, alerts as text, and draws the chart", async () => {
        Object.assign(timings, await expectLiveDashboard(watched, "purchase", 10_000));
        assert.deepEqual(new Set(fake.alertLimits), new Set(["10"]));
        assert.equal(await page.textContent("#metrics-status"), "metrics: ok");
        assert.equal(await page.textContent("#alerts-status"), "alerts: ok");
        const types = await page.$$eval(
          "#types-body tr",
          (rows) => rows.map((r) => r.dataset.type),
        );
        assert.deepEqual(types, ["login", "purchase", 'we"ird\\type']);
        assert.equal(await page.textContent("#tile-lag"), "10");
        assert.equal(await page.textContent("#tile-memory"), "50.0");
        assert.equal(await page.textContent("#tile-fraud"), "4");
        assert.ok(Number(await page.textContent("#tile-rejected")) > 0);
        // An unknown severity gets a fixed class, never one made from the value.
        const classes = await page.$$eval(
          "#alerts-body tr td:nth-child(2)",
          (tds) => tds.map((td) => td.className),
        );
        assert.deepEqual(classes, ["sev sev-high", "sev sev-other", "sev sev-medium"]);
        // Rule score, LLM score and the combined score, and the LLM's verdict, flagged when it
        // disagrees with the rules.
        const scores = await page.$$eval(
          "#alerts-body tr",
          (rows) =>
            rows.map((r) => [...r.querySelectorAll("td")].slice(4, 7).map((td) => td.textContent)),
        );
        assert.deepEqual(scores, [
          ["0.500", "0.900", "0.900"],
          ["0.900", "0.000", "0.900"],
          ["0.500", "–", "0.500"],
        ]);
        const llm = await page.$$eval(
          "#alerts-body tr td:nth-child(9)",
          (tds) => tds.map((td) => td.textContent),
        );
        assert.deepEqual(llm, ["fraud", "legitimate disagrees", "skipped"]);
        assert.equal(await page.locator("#alerts-body tr[data-llm-disagrees]").count(), 1);
        const rules = await page.$$eval(
          "#alerts-body tr td:nth-child(4)",
          (tds) => tds.map((td) => td.textContent),
        );
        assert.equal(rules[0], "high_value_purchase, <b>x");
        assert.equal(await page.locator("#alerts-body b, #alerts-body script").count(), 0);
      });

      await t.step("says what is wrong when /metrics fails and /alerts answers 404", async () => {
        fake.goDown();
        await page.waitForFunction(
          () =>
            document.getElementById("metrics-status")?.textContent === "metrics: HTTP 503" &&
            document.getElementById("alerts-note")?.textContent ===
              "alerts not available in this role",
          undefined,
          { timeout: 5_000, polling: 100 },
        );
        assert.equal(await page.isHidden("#alerts-table"), true);
        // The last numbers stay on screen, dimmed.
        assert.ok(await page.evaluate(() => document.body.classList.contains("metrics-stale")));
        assert.ok(await acceptedRate(page, "purchase") > 0);
        await page.screenshot({ path: join(ARTIFACTS, "dashboard-degraded.png"), fullPage: true });
      });
    } finally {
      await browser.close();
      await fake.close();
      console.log("dashboard timings", timings);
    }
  },
});

// ---------------------------------------------------------------------------------------------
// In a browser, against the real gateway process

Deno.test({
  name: "GET / of the real gateway shows live throughput and alerts as text",
  ignore: SKIP_BROWSER,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "dashboard_it_" });
    const gw = await startGateway({
      LAKE_DIR: join(root, "lake"),
      WAL_DIR: join(root, "wal"),
      DEAD_LETTER_DIR: join(root, "dlq"),
      LAKE_FLUSH_INTERVAL_MS: "200",
      JOBS_CRON: "off",
      // high_value_purchase alone (medium, 0.5) raises an alert.
      FRAUD_ALERT_SCORE: "0.4",
    });
    let browser: Browser | undefined;
    let traffic: ReturnType<typeof setInterval> | undefined;
    let posting: Promise<unknown> = Promise.resolve();
    try {
      const res = await fetch(`${gw.url}/`);
      assert.equal(res.status, 200, "the gateway does not serve the dashboard at GET /");
      await res.body?.cancel();

      browser = await launchBrowser();
      const watched = await openDashboard(browser, `${gw.url}/`);
      const bad = await postEvents(gw.url, [
        clientEvent(0, { user_id: XSS_USER, payload: { amount: 5000, currency: "EUR" } }),
      ]);
      assert.equal(bad.status, 202);
      // Page views only: no fraud rule fires on them, so the alert above stays in the latest 10.
      let i = 0;
      traffic = setInterval(() => {
        const events = Array.from(
          { length: 20 },
          () => clientEvent(2, { type: "page_view", payload: { page: `/p/${i++}` } }),
        );
        posting = Promise.all([posting, postEvents(gw.url, events).catch(() => {})]);
      }, 250);
      const timings = await expectLiveDashboard(watched, "page_view", 30_000);
      console.log("dashboard (gateway) timings", timings);
    } finally {
      clearInterval(traffic);
      await posting;
      await browser?.close();
      await gw.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});
