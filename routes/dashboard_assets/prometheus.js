// The Prometheus side of the dashboard (dashboard.js): parses what GET /metrics answers and turns
// the samples into snapshots and per-second rates. No DOM here.
//
// This file and dashboard.js run as one inline script, in one scope: the dashboard page joins
// them. dashboard.js uses parseMetrics, snapshot, increase, rates and sum.

// deno-lint-ignore-file no-unused-vars -- what dashboard.js uses looks unused to a linter

// ---- Prometheus text exposition format (0.0.4): name{label="value",...} value [timestamp]

function parseValue(text) {
  if (text === "+Inf" || text === "Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  const n = Number(text);
  if (text === undefined || text === "" || Number.isNaN(n)) throw new Error("bad value");
  return n;
}

function parseLine(line) {
  let i = 0;
  while (i < line.length && line[i] !== "{" && line[i] !== " " && line[i] !== "\t") i++;
  const name = line.slice(0, i);
  if (name === "") throw new Error("no metric name");
  const labels = Object.create(null);
  if (line[i] === "{") {
    i++;
    for (;;) {
      while (line[i] === " " || line[i] === "\t" || line[i] === ",") i++;
      if (i >= line.length) throw new Error("unterminated labels");
      if (line[i] === "}") {
        i++;
        break;
      }
      const eq = line.indexOf("=", i);
      if (eq < 0) throw new Error("label without value");
      const key = line.slice(i, eq).trim();
      i = eq + 1;
      while (line[i] === " ") i++;
      if (line[i] !== '"') throw new Error("unquoted label value");
      i++;
      let value = "";
      for (;;) {
        if (i >= line.length) throw new Error("unterminated label value");
        const ch = line[i];
        if (ch === '"') {
          i++;
          break;
        }
        if (ch === "\\") { // the format escapes only \\, \" and \n
          const next = line[i + 1];
          value += next === "n" ? "\n" : (next ?? "");
          i += 2;
        } else {
          value += ch;
          i++;
        }
      }
      labels[key] = value;
    }
  }
  const fields = line.slice(i).trim().split(/\s+/);
  return { name, labels, value: parseValue(fields[0]) };
}

function parseMetrics(text) {
  const samples = [];
  let bad = 0;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line[0] === "#") continue;
    try {
      samples.push(parseLine(line));
    } catch {
      bad++;
    }
  }
  return { samples, bad };
}

// ---- Snapshots and rates

function sumBy(samples, name, label) {
  const out = new Map();
  for (const s of samples) {
    if (s.name !== name || !Number.isFinite(s.value)) continue;
    const key = s.labels[label] ?? "";
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

function total(samples, name) {
  let sum = null;
  for (const s of samples) {
    if (s.name === name && Number.isFinite(s.value)) sum = (sum ?? 0) + s.value;
  }
  return sum;
}

function snapshot(samples, t) {
  const pick = (name, keys) =>
    samples.filter((s) => s.name === name && Number.isFinite(s.value)).map((s) => {
      const row = { value: s.value };
      for (const k of keys) row[k] = s.labels[k] ?? "";
      return row;
    });
  return {
    t,
    received: sumBy(samples, "streamgate_events_received_total", "type"),
    accepted: sumBy(samples, "streamgate_events_accepted_total", "type"),
    rejected: sumBy(samples, "streamgate_events_rejected_total", "type"),
    deadLetters: sumBy(samples, "streamgate_dead_letters_total", "source"),
    lag: pick("streamgate_consumer_lag", ["topic", "partition"]),
    fraud: pick("streamgate_fraud_alerts_total", ["rule", "severity"]),
    lakeRows: total(samples, "streamgate_lake_rows_written_total"),
    memory: total(samples, "process_resident_memory_bytes"),
  };
}

// A counter that went down was reset (the process restarted): all of it is new.
const increase = (before, now) => now >= before ? now - before : now;

function rates(before, now, seconds) {
  const out = new Map();
  for (const [key, value] of now) out.set(key, increase(before.get(key) ?? 0, value) / seconds);
  return out;
}

const sum = (map) => {
  let s = 0;
  for (const v of map.values()) s += v;
  return s;
};
