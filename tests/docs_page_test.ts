/**
 * The API page (`GET /docs`) in a real headless browser, as `tests/dashboard_test.ts` drives it:
 * Debian's `chromium` through playwright-core. The page runs against an in-process app with the
 * real ingest routes, so the examples it generates must pass the real validation.
 *
 * No Chromium: in CI (`CI=true`) the test fails; elsewhere it is skipped with a message. Set
 * `DOCS_SCREENSHOT=/path/docs.png` to keep a screenshot.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import type { Page } from "playwright-core";
import { launchBrowser, skipBrowser } from "./browser.ts";
import { Ingestor } from "../pipeline/ingest.ts";
import type { DeadLetter, DeadLetterSink, EventLog } from "../pipeline/durable_log.ts";
import { silentLogger } from "../shared/logger.ts";
import { type Envelope, EVENT_TYPES } from "../shared/schemas.ts";
import { docsRoutes } from "../routes/docs.ts";
import { errorHandler } from "../routes/errors.ts";
import { eventRoutes } from "../routes/events.ts";
import { healthRoutes } from "../routes/health.ts";

const SKIP_BROWSER = skipBrowser("docs_page_test");

/** The gateway's ingest, health and docs routes over an in-memory log. */
function testApp() {
  const requests: Envelope[][] = [];
  const log: EventLog = {
    append: (events) => (requests.push(events), Promise.resolve()),
    overloaded: () => undefined,
    close: () => Promise.resolve(),
  };
  const letters: DeadLetter[] = [];
  const deadLetters: DeadLetterSink = {
    send: (l) => (letters.push(...l), Promise.resolve()),
    close: () => Promise.resolve(),
  };
  const ingestor = new Ingestor(log, deadLetters, {
    validation: { unknownTypes: "reject", maxPastMs: 30 * 86_400_000, maxFutureMs: 3_600_000 },
    timeoutMs: 5000,
  });
  const app = new Hono<{ Variables: { requestId: string } }>();
  app.use(requestId());
  app.onError(errorHandler(silentLogger));
  const limits = { maxBytes: 1 << 20, maxEvents: 1000, maxDepth: 16 };
  app.route("/", eventRoutes({ ingestor, limits, logger: silentLogger }));
  app.route("/", healthRoutes({ checks: [] }));
  app.route("/", docsRoutes());
  return { app, requests, letters };
}

async function sendAndWait(page: Page, op: string, status: string): Promise<string> {
  const box = page.locator(`#op-${op}`);
  await box.locator("button[type=submit]").click();
  const line = box.locator(".response .status");
  await line.waitFor({ timeout: 10_000 });
  assert.match(await line.textContent() ?? "", new RegExp(`^${status}\\b`));
  return await box.locator(".response pre.body").textContent() ?? "";
}

Deno.test({
  name: "GET /docs in a browser lists every operation and sends valid requests",
  ignore: SKIP_BROWSER,
  async fn() {
    const { app, requests, letters } = testApp();
    const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, app.fetch);
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
      const problems: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`console.error: ${m.text()}`);
      });
      page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
      const outside: string[] = [];
      page.on("request", (r) => {
        if (!r.url().startsWith(`http://127.0.0.1:${server.addr.port}/`)) outside.push(r.url());
      });

      const res = await page.goto(`http://127.0.0.1:${server.addr.port}/docs`);
      assert.equal(res?.status(), 200);
      await page.locator("details.op").first().waitFor({ state: "attached", timeout: 10_000 })
        .catch((err) => {
          throw new Error(`The page did not render: ${problems.join("; ")}`, { cause: err });
        });
      assert.equal(await page.locator("details.op").count(), 13);

      // GET /health from its form.
      await page.locator("#op-getHealth > summary").click();
      assert.deepEqual(JSON.parse(await sendAndWait(page, "getHealth", "200")), { status: "ok" });
      const headers = await page.locator("#op-getHealth dl.headers dt").allTextContents();
      assert.ok(headers.includes("content-type") && headers.includes("x-request-id"), `${headers}`);

      // POST /events: the generated example of every type passes the real validation.
      await page.locator("#op-postEvents > summary").click();
      const variant = page.locator("#postEvents-body-variant");
      for (const type of EVENT_TYPES) {
        await variant.selectOption(type);
        const body = JSON.parse(await sendAndWait(page, "postEvents", "202"));
        assert.equal(body.accepted, 1, `${type}: ${JSON.stringify(body.rejected)}`);
        assert.equal(requests.at(-1)?.[0]?.type, type);
      }

      // NDJSON, three lines, gzip-compressed by the page.
      await page.locator("#postEvents-body-type").selectOption("application/x-ndjson");
      await page.locator("#op-postEvents input.count").fill("3");
      await page.locator("#op-postEvents input.count").dispatchEvent("change");
      await page.locator("#postEvents-p0").selectOption("gzip");
      const ndjson = JSON.parse(await sendAndWait(page, "postEvents", "202"));
      assert.equal(ndjson.accepted, 3);
      assert.match(await page.locator("#op-postEvents pre.curl").textContent() ?? "", /\| gzip \|/);
      assert.equal(letters.length, 0);

      // The filter narrows the list.
      await page.locator("input[type=search]").fill("admin");
      assert.equal(await page.locator("details.op:visible").count(), 2);
      await page.locator("input[type=search]").fill("");

      const screenshot = Deno.env.get("DOCS_SCREENSHOT");
      if (screenshot) await page.screenshot({ path: screenshot, fullPage: false });
      assert.deepEqual(problems, [], "no script error or CSP violation");
      assert.deepEqual(outside, [], "no request to another origin");
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});
