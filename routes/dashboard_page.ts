/**
 * The dashboard page served by `GET /` (see `dashboard.ts`): one self-contained HTML document with
 * its style and script inline, nothing fetched from elsewhere. The style and script live in
 * `dashboard_assets/` and are imported as text, so they are part of the module graph: they ship
 * inside a `deno compile` binary with no `--include`. They stay inline (unlike the `/docs` assets,
 * which are served as files) so that the page's Content-Security-Policy allows exactly them, by
 * their hashes; settings reach the script through `data-*` attributes on `<body>`, which keeps the
 * script text (and its hash) fixed.
 *
 * Everything that comes from a response is inserted with `textContent` or DOM properties, never
 * as markup: alerts carry user-controlled strings.
 *
 * @module
 */
import DASHBOARD_CSS from "./dashboard_assets/dashboard.css" with { type: "text" };
import DASHBOARD_JS from "./dashboard_assets/dashboard.js" with { type: "text" };
import PROMETHEUS_JS from "./dashboard_assets/prometheus.js" with { type: "text" };

/** The page's inline style sheet (hashed into the CSP: change it and the hash follows). */
export const DASHBOARD_STYLE: string = DASHBOARD_CSS;

/**
 * The page's inline script (hashed into the CSP): `prometheus.js` then `dashboard.js`, in one
 * strict-mode function scope so that none of their names reach the page's global scope. Neither
 * may contain a closing script tag.
 */
export const DASHBOARD_SCRIPT: string = `"use strict";
(() => {
${PROMETHEUS_JS}
${DASHBOARD_JS}})();
`;

/** Settings the page's script reads from `<body data-*>`. */
export interface DashboardPageOptions {
  pollIntervalMs: number;
  alertLimit: number;
}

/** The whole document, with {@link DASHBOARD_STYLE} and {@link DASHBOARD_SCRIPT} inline. */
export function dashboardHtml({ pollIntervalMs, alertLimit }: DashboardPageOptions): string {
  // Both are validated integers, so they need no escaping in the attributes.
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamgate dashboard</title>
<link rel="icon" href="data:,">
<style>${DASHBOARD_STYLE}</style>
</head>
<body data-poll-ms="${pollIntervalMs}" data-alert-limit="${alertLimit}">
<header>
  <h1>streamgate <span>live</span></h1>
  <div class="status" role="status" aria-live="polite">
    <span id="metrics-status" class="pill">metrics: connecting…</span>
    <span id="alerts-status" class="pill">alerts: connecting…</span>
    <span id="updated"></span> <span id="interval" class="unit"></span>
  </div>
</header>
<noscript><p class="note">This dashboard needs JavaScript.</p></noscript>
<main>
  <section class="tiles metric" aria-label="Totals">
    <div class="tile"><h2>Accepted</h2><p class="big" id="tile-accepted">–</p><p class="unit">events/s</p></div>
    <div class="tile"><h2>Rejected</h2><p class="big" id="tile-rejected">–</p><p class="unit">events/s</p></div>
    <div class="tile"><h2>Dead letters</h2><p class="big" id="tile-dead">–</p><p class="unit">total</p></div>
    <div class="tile"><h2>Consumer lag</h2><p class="big" id="tile-lag">–</p><p class="unit">messages</p></div>
    <div class="tile"><h2>Lake rows</h2><p class="big" id="tile-lake">–</p><p class="unit">rows/s</p></div>
    <div class="tile"><h2>Fraud alerts</h2><p class="big" id="tile-fraud">–</p><p class="unit">total</p></div>
    <div class="tile"><h2>Memory</h2><p class="big" id="tile-memory">–</p><p class="unit">MiB resident</p></div>
  </section>
  <section class="card wide metric">
    <h2>Throughput: accepted events/s by type</h2>
    <canvas id="chart" role="img" aria-label="Accepted events per second by type, and rejected events per second"></canvas>
    <div id="legend" class="legend"></div>
  </section>
  <section class="card span2 metric">
    <h2>By event type</h2>
    <table>
      <thead><tr><th>type</th><th class="num">received/s</th><th class="num">accepted/s</th><th class="num">rejected/s</th><th class="num">accepted</th><th class="num">rejected</th></tr></thead>
      <tbody id="types-body"><tr><td class="empty" colspan="6">waiting for /metrics</td></tr></tbody>
    </table>
  </section>
  <section class="card metric">
    <h2>Consumer lag</h2>
    <table>
      <thead><tr><th>topic</th><th class="num">partition</th><th class="num">lag</th></tr></thead>
      <tbody id="lag-body"><tr><td class="empty" colspan="3">waiting for /metrics</td></tr></tbody>
    </table>
    <h2>Dead letters</h2>
    <table>
      <thead><tr><th>source</th><th class="num">per s</th><th class="num">total</th></tr></thead>
      <tbody id="dead-body"><tr><td class="empty" colspan="3">waiting for /metrics</td></tr></tbody>
    </table>
  </section>
  <section class="card wide">
    <h2>Latest fraud alerts</h2>
    <p id="alerts-note" class="note"></p>
    <table id="alerts-table">
      <thead><tr><th>raised</th><th>severity</th><th>user</th><th>rules</th><th class="num" title="The rules' score">rule</th><th class="num" title="The LLM's score">LLM</th><th class="num" title="max(rule, LLM): never below the rules">score</th><th>trigger</th><th>verdict</th></tr></thead>
      <tbody id="alerts-body"><tr><td class="empty" colspan="9">waiting for /alerts</td></tr></tbody>
    </table>
  </section>
  <section class="card metric">
    <h2>Fraud alerts by rule</h2>
    <table>
      <thead><tr><th>rule</th><th>severity</th><th class="num">alerts</th></tr></thead>
      <tbody id="rules-body"><tr><td class="empty" colspan="3">waiting for /metrics</td></tr></tbody>
    </table>
  </section>
</main>
<script>${DASHBOARD_SCRIPT}</script>
</body>
</html>
`;
}
