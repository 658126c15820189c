// The live dashboard at GET /. Polls `metrics` and
// `alerts` relative to the page (so it also works behind a path prefix), computes rates as the
// increase between two polls over the seconds between them (prometheus.js parses the metrics),
// and draws the chart on a <canvas>. Settings come from `data-*` attributes on <body>.
//
// This file runs inline in the page, after prometheus.js and in the same scope, allowed by its
// SHA-256 hash in the Content-Security-Policy (computed from the text at start-up), so it must
// never contain a closing script tag. Everything that comes from a response is inserted with
// textContent or DOM properties, never as markup: alerts carry user-controlled strings.

// parseMetrics, snapshot, increase, rates and sum come from prometheus.js, which runs first, in
// the same scope.

const POLL_MS = Number(document.body.dataset.pollMs) || 2000;
const ALERT_LIMIT = Number(document.body.dataset.alertLimit) || 10;
const HISTORY = 150; // chart points: 5 minutes at the default interval
const TIMEOUT_MS = Math.min(Math.max(POLL_MS * 2, 2000), 10000);
const COLORS = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#b07aa1",
  "#edc948",
  "#76b7b2",
  "#ff9da7",
  "#9c755f",
  "#8cd17d",
  "#86bcb6",
];
const REJECTED_COLOR = "#e15759";
const SEVERITIES = new Set(["low", "medium", "high", "critical"]);
const byId = (id) => document.getElementById(id);
// ---- Formatting and DOM helpers (text only: nothing from a response is parsed as markup)

function fmtRate(r) {
  if (r === null || r === undefined || !Number.isFinite(r)) return "–";
  if (r === 0) return "0";
  if (r >= 100) return Math.round(r).toLocaleString("en-US");
  return r >= 10 ? r.toFixed(1) : r.toFixed(2);
}
const fmtCount = (n) =>
  n === null || !Number.isFinite(n) ? "–" : Math.round(n).toLocaleString("en-US");
const fmtBytes = (n) => n === null ? "n/a" : (n / 1048576).toFixed(1);
const text = (v) => v === null || v === undefined ? "" : String(v);

function cell(value, className) {
  const td = document.createElement("td");
  td.textContent = value;
  if (className) td.className = className;
  return td;
}

function row(cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

function fill(tbodyId, rows, columns, empty) {
  const tbody = byId(tbodyId);
  if (rows.length > 0) return tbody.replaceChildren(...rows);
  const td = cell(empty, "empty");
  td.colSpan = columns;
  tbody.replaceChildren(row([td]));
}

function setStatus(id, state, message) {
  const node = byId(id);
  node.textContent = message;
  node.dataset.state = state;
}

function describe(err) {
  if (err && err.name === "TimeoutError") return "timed out";
  if (err instanceof TypeError) return "unreachable";
  return err && err.message ? err.message : String(err);
}

const collator = new Intl.Collator("en");

// ---- State

let previous = null;
let lastRates = null;
const history = []; // {t, accepted: Map(type → events/s), rejected: events/s}
const colorOf = new Map();

function colorFor(type) {
  if (!colorOf.has(type)) colorOf.set(type, COLORS[colorOf.size % COLORS.length]);
  return colorOf.get(type);
}

// ---- Rendering

function render(snap, r) {
  renderTiles(snap, r);
  renderTypes(snap, r);
  renderBreakdowns(snap, r);
}

/** The totals at the top: rates need two polls (`r`), counts need one. */
function renderTiles(snap, r) {
  byId("tile-accepted").textContent = r ? fmtRate(sum(r.accepted)) : "–";
  byId("tile-rejected").textContent = r ? fmtRate(sum(r.rejected)) : "–";
  byId("tile-dead").textContent = fmtCount(sum(snap.deadLetters));
  byId("tile-lag").textContent = snap.lag.length
    ? fmtCount(snap.lag.reduce((s, l) => s + l.value, 0))
    : "n/a";
  byId("tile-lake").textContent = r ? fmtRate(r.lakeRows) : "–";
  byId("tile-fraud").textContent = fmtCount(snap.fraud.reduce((s, f) => s + f.value, 0));
  byId("tile-memory").textContent = fmtBytes(snap.memory);
}

/** One row per event type seen in any counter, with its rates and totals. */
function renderTypes(snap, r) {
  const knownTypes = new Set([
    ...snap.received.keys(),
    ...snap.accepted.keys(),
    ...snap.rejected.keys(),
  ]);
  const types = [...knownTypes].sort(collator.compare);

  fill(
    "types-body",
    types.map((type) => {
      const tr = row([
        cell(type, "name"),
        cell(r ? fmtRate(r.received.get(type) ?? 0) : "–", "num"),
        cell(r ? fmtRate(r.accepted.get(type) ?? 0) : "–", "num rate-accepted"),
        cell(
          r ? fmtRate(r.rejected.get(type) ?? 0) : "–",
          r && r.rejected.get(type) ? "num bad" : "num",
        ),
        cell(fmtCount(snap.accepted.get(type) ?? 0), "num"),
        cell(fmtCount(snap.rejected.get(type) ?? 0), snap.rejected.get(type) ? "num bad" : "num"),
      ]);
      tr.dataset.type = type;
      return tr;
    }),
    6,
    "no events yet",
  );
}

/** Consumer lag per partition, dead letters per source, fraud alerts per rule. */
function renderBreakdowns(snap, r) {
  const lag = [...snap.lag].sort((a, b) =>
    collator.compare(a.topic, b.topic) || Number(a.partition) - Number(b.partition)
  );
  fill(
    "lag-body",
    lag.map((l) =>
      row([cell(l.topic, "name"), cell(l.partition, "num"), cell(fmtCount(l.value), "num")])
    ),
    3,
    "no consumer lag reported",
  );

  const dead = [...snap.deadLetters].sort((a, b) => collator.compare(a[0], b[0]));
  fill(
    "dead-body",
    dead.map(([source, n]) =>
      row([
        cell(source, "name"),
        cell(r ? fmtRate(r.deadLetters.get(source) ?? 0) : "–", "num"),
        cell(fmtCount(n), n ? "num bad" : "num"),
      ])
    ),
    3,
    "no dead letters",
  );

  const fraud = [...snap.fraud].sort((a, b) =>
    b.value - a.value || collator.compare(a.rule, b.rule)
  );
  fill(
    "rules-body",
    fraud.map((f) =>
      row([
        cell(f.rule, "name"),
        cell(f.severity, severityClass(f.severity)),
        cell(fmtCount(f.value), "num"),
      ])
    ),
    3,
    "no fraud alerts",
  );
}

function severityClass(severity) {
  return "sev " + (SEVERITIES.has(severity) ? "sev-" + severity : "sev-other");
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function drawChart() {
  const canvas = byId("chart");
  // This runs in the browser, where `window` is the page's (deno lint assumes Deno).
  // deno-lint-ignore no-window
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (w === 0 || h === 0) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const chart = chartLayout(ctx, w, h);
  const types = [...colorOf.keys()];
  drawAxes(chart);
  drawSeries(chart, types);

  canvas.dataset.points = String(history.length);
  canvas.dataset.series = String(types.length);
  drawLegend(types);
}

/** The plot area inside the canvas, and the scales from rates and times to it. */
function chartLayout(ctx, w, h) {
  const pad = { left: 52, right: 12, top: 10, bottom: 22 };
  const pw = w - pad.left - pad.right, ph = h - pad.top - pad.bottom;
  let max = 0;
  for (const p of history) {
    max = Math.max(max, p.rejected);
    for (const v of p.accepted.values()) max = Math.max(max, v);
  }
  max = niceMax(max);
  // The window grows from one minute to HISTORY polls, so a fresh page is not an empty chart.
  const end = history.length ? history[history.length - 1].t : Date.now();
  const full = HISTORY * POLL_MS;
  const span = Math.min(full, Math.max(60000, history.length ? end - history[0].t : 0));
  const x = (t) => pad.left + pw * (1 - (end - t) / span);
  const y = (v) => pad.top + ph * (1 - v / max);
  return { ctx, pad, pw, ph, max, end, span, x, y };
}

/** Horizontal grid lines with their rates, time labels below, and a note while empty. */
function drawAxes({ ctx, pad, pw, ph, max, end, span, x, y }) {
  const css = getComputedStyle(document.documentElement);
  const muted = css.getPropertyValue("--muted").trim() || "#888";
  const grid = css.getPropertyValue("--grid").trim() || "#ddd";
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  ctx.strokeStyle = grid;
  ctx.fillStyle = muted;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.left, Math.round(y(v)) + 0.5);
    ctx.lineTo(pad.left + pw, Math.round(y(v)) + 0.5);
    ctx.stroke();
    ctx.fillText(fmtRate(v) + "/s", pad.left - 6, y(v));
  }
  const spanS = span / 1000;
  const step = [10, 30, 60, 120, 300, 600, 1800].find((s) => spanS / s <= 6) || 3600;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let s = 0; s <= spanS; s += step) {
    const label = s === 0 ? "now" : s % 60 === 0 ? "-" + s / 60 + " min" : "-" + s + " s";
    ctx.fillText(
      label,
      Math.min(Math.max(x(end - s * 1000), pad.left + 14), pad.left + pw - 14),
      pad.top + ph + 6,
    );
  }

  if (history.length === 0) {
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("collecting data…", pad.left + pw / 2, pad.top + ph / 2);
  }
}

/** A line of accepted events/s per type and a dashed one of rejected/s, clipped to the plot. */
function drawSeries({ ctx, pad, pw, ph, x, y }, types) {
  ctx.save();
  ctx.beginPath();
  ctx.rect(pad.left, pad.top - 2, pw, ph + 4);
  ctx.clip();
  const line = (color, dashed, value) => {
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = 2;
    ctx.setLineDash(dashed ? [5, 4] : []);
    ctx.beginPath();
    let before = null, last = null;
    for (const p of history) {
      const v = value(p);
      // A gap in the polls (endpoint down, tab hidden) breaks the line instead of bridging it.
      if (v === undefined || before === null || p.t - before.t > POLL_MS * 2.5) {
        ctx.moveTo(x(p.t), y(v ?? 0));
      } else ctx.lineTo(x(p.t), y(v));
      before = v === undefined ? null : p;
      if (v !== undefined) last = { p, v };
    }
    ctx.stroke();
    if (last) {
      ctx.beginPath();
      ctx.arc(x(last.p.t), y(last.v), 3, 0, 2 * Math.PI);
      ctx.fill();
    }
  };
  for (const type of types) line(colorFor(type), false, (p) => p.accepted.get(type));
  line(REJECTED_COLOR, true, (p) => p.rejected);
  ctx.restore();
}

/** The legend under the chart: each type's color, then the rejected line's. */
function drawLegend(types) {
  const legend = [...types.map((t) => [t, colorFor(t)]), [
    "rejected (all types)",
    REJECTED_COLOR,
  ]];
  byId("legend").replaceChildren(...legend.map(([name, color]) => {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color; // CSSOM, not a style attribute: allowed by the CSP
    item.append(swatch, name);
    return item;
  }));
}

// ---- Polling

async function get(path, accept) {
  return await fetch(path, {
    cache: "no-store",
    headers: { accept },
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
}

async function pollMetrics() {
  let body;
  try {
    const res = await get("metrics", "text/plain");
    if (!res.ok) throw new Error("HTTP " + res.status);
    body = await res.text();
  } catch (err) {
    setStatus("metrics-status", "err", "metrics: " + describe(err));
    document.body.classList.add("metrics-stale");
    return;
  }
  const now = Date.now();
  const { samples, bad } = parseMetrics(body);
  const snap = snapshot(samples, now);
  setStatus(
    "metrics-status",
    bad ? "warn" : "ok",
    bad ? "metrics: ok (" + bad + " unparsed lines)" : "metrics: ok",
  );
  document.body.classList.remove("metrics-stale");
  lastRates = null;
  if (previous && now > previous.t) {
    const seconds = (now - previous.t) / 1000;
    lastRates = {
      received: rates(previous.received, snap.received, seconds),
      accepted: rates(previous.accepted, snap.accepted, seconds),
      rejected: rates(previous.rejected, snap.rejected, seconds),
      deadLetters: rates(previous.deadLetters, snap.deadLetters, seconds),
      lakeRows: snap.lakeRows === null
        ? null
        : increase(previous.lakeRows ?? 0, snap.lakeRows) / seconds,
    };
    for (const type of [...lastRates.accepted.keys()].sort(collator.compare)) colorFor(type);
    history.push({ t: now, accepted: lastRates.accepted, rejected: sum(lastRates.rejected) });
    while (history.length > HISTORY) history.shift();
  }
  previous = snap;
  byId("updated").textContent = "updated " + new Date(now).toLocaleTimeString();
  render(snap, lastRates);
  drawChart();
}

function alertsUnavailable(state, status, note) {
  setStatus("alerts-status", state, status);
  byId("alerts-note").textContent = note;
  byId("alerts-table").classList.add("stale");
}

async function pollAlerts() {
  let res, data;
  try {
    res = await get("alerts?limit=" + ALERT_LIMIT, "application/json");
    if (res.status === 404) {
      await res.body?.cancel();
      setStatus("alerts-status", "off", "alerts: not available");
      byId("alerts-note").textContent = "alerts not available in this role";
      byId("alerts-table").hidden = true;
      return;
    }
    if (res.status === 401 || res.status === 403) {
      // The query routes are private (API keys): a page has no key to send.
      await res.body?.cancel();
      setStatus("alerts-status", "off", "alerts: private");
      byId("alerts-note").textContent =
        "alerts need an API key here (the query routes are private)";
      byId("alerts-table").hidden = true;
      return;
    }
    if (!res.ok) throw new Error("HTTP " + res.status);
    data = await res.json();
  } catch (err) {
    const why = err instanceof SyntaxError ? "invalid JSON" : describe(err);
    return alertsUnavailable(
      "err",
      "alerts: " + why,
      "alerts could not be loaded (" + why + "); showing the last ones seen",
    );
  }
  const alerts = data && Array.isArray(data.alerts) ? data.alerts : null;
  if (!alerts) {
    return alertsUnavailable("err", "alerts: unexpected response", "alerts could not be read");
  }
  setStatus("alerts-status", "ok", "alerts: ok");
  byId("alerts-table").hidden = false;
  byId("alerts-table").classList.remove("stale");
  byId("alerts-note").textContent = alerts.length === 0 ? "no fraud alerts yet" : "";
  fill("alerts-body", alerts.map(alertRow), ALERT_COLUMNS, "no fraud alerts yet");
}

const ALERT_COLUMNS = 9;
const fmtScore = (v) => typeof v === "number" && Number.isFinite(v) ? v.toFixed(3) : "–";

/**
 * One alert: the rules' score, the LLM's and the combined one (`score`, never below the rules'),
 * and the LLM's verdict, marked when it disagrees with the rules.
 */
function alertRow(a) {
  a = a && typeof a === "object" ? a : {};
  const raised = new Date(a.raised_at);
  const when = cell(
    Number.isNaN(raised.getTime()) ? text(a.raised_at) : raised.toLocaleTimeString(),
    "nowrap",
  );
  when.title = text(a.raised_at);
  const rules = Array.isArray(a.rules) ? a.rules.map(text).join(", ") : text(a.rules);
  const disagrees = a.llm_disagrees === true;
  const llmCell = cell(a.llm_verdict ? text(a.llm_verdict) : text(a.llm_status), "nowrap");
  llmCell.title = text(a.llm_rationale);
  if (disagrees) {
    const flag = document.createElement("span");
    flag.className = "disagrees";
    flag.textContent = "disagrees";
    flag.title = "The LLM disagrees with the rules: a model problem or an injection attempt";
    llmCell.append(" ", flag);
  }
  const score = cell(fmtScore(a.fraud_score), "num score");
  score.title = "max(rule, LLM): never below the rules";
  const tr = row([
    when,
    cell(text(a.severity), severityClass(a.severity)),
    cell(text(a.user_id), "user"),
    cell(rules),
    cell(fmtScore(a.rule_score), "num rule-score"),
    cell(fmtScore(a.llm_score), "num llm-score"),
    score,
    cell(text(a.trigger_type)),
    llmCell,
  ]);
  tr.dataset.alertId = text(a.alert_id);
  if (disagrees) tr.dataset.llmDisagrees = "true";
  return tr;
}

async function tick() {
  try {
    if (!document.hidden || previous === null) await Promise.all([pollMetrics(), pollAlerts()]);
  } finally {
    setTimeout(tick, POLL_MS);
  }
}

new ResizeObserver(() => drawChart()).observe(byId("chart"));
byId("interval").textContent = "every " + POLL_MS / 1000 + " s";
tick();
