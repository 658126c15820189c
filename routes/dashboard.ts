/**
 * `GET /`: a live dashboard for people. One self-contained page (`dashboard_page.ts`) that polls
 * `GET /metrics` and `GET /alerts` from the same origin and shows throughput per event type,
 * rejected events, dead letters, consumer lag, lake rows written and the latest fraud alerts, with
 * a chart. It ships everything it needs: no CDN, nothing fetched from the internet.
 *
 * The page is static, so its Content-Security-Policy allows its inline script and style by their
 * SHA-256 hashes, computed once, rather than with `'unsafe-inline'` or a per-request nonce: any
 * other script, an injected one included, does not run, and the page can be cached.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Hono } from "hono";
import { DASHBOARD_SCRIPT, DASHBOARD_STYLE, dashboardHtml } from "./dashboard_page.ts";

/** Options of {@link dashboardRoutes}. */
export interface DashboardRoutesOptions {
  /**
   * How often the page polls `/metrics` and `/alerts`, in milliseconds (250 to 60000).
   * @default {2000}
   */
  pollIntervalMs?: number;
  /**
   * How many of the latest alerts the page lists: the `limit` it asks `/alerts` for (1 to 100).
   * @default {10}
   */
  alertLimit?: number;
}

/** A CSP source expression allowing the inline element whose content is exactly `text`. */
function hashSource(text: string): string {
  return `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
}

/** The page's Content-Security-Policy. */
export const DASHBOARD_CSP: string = [
  "default-src 'self'",
  `script-src ${hashSource(DASHBOARD_SCRIPT)}`,
  `style-src ${hashSource(DASHBOARD_STYLE)}`,
  // The empty `data:,` favicon keeps browsers from asking for /favicon.ico.
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  // Where supported (Chromium), assigning any string to innerHTML & co. throws: data from
  // responses can only enter the page as text, which is how the script inserts it.
  "require-trusted-types-for 'script'",
].join("; ");

const HEADERS: Record<string, string> = {
  "content-security-policy": DASHBOARD_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // Revalidate, so a new release's page (and its matching CSP) is picked up at once.
  "cache-control": "no-cache",
};

function intOption(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot build the dashboard: "${name}" must be an integer from ${min} to ` +
        `${max}, got "${value}"`,
    );
  }
  return value;
}

/** The dashboard route: `GET /` only. */
export function dashboardRoutes(options: DashboardRoutesOptions = {}): Hono {
  const html = dashboardHtml({
    pollIntervalMs: intOption("pollIntervalMs", options.pollIntervalMs ?? 2000, 250, 60_000),
    alertLimit: intOption("alertLimit", options.alertLimit ?? 10, 1, 100),
  });
  const app = new Hono();
  app.get("/", (c) => c.html(html, 200, HEADERS));
  return app;
}
