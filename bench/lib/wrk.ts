/**
 * HTTP load with wrk (Debian's `wrk` 4.1): a generated Lua script cycles through prepared requests
 * (each thread from its own starting point) and prints one JSON summary line at the end, with
 * latency percentiles and, when asked, the count of each status code.
 *
 * @module
 */
import { join } from "node:path";
import { run, tempDir } from "./proc.ts";

/** One request wrk sends. */
export interface WrkRequest {
  method: "GET" | "POST";
  path: string;
  body?: string;
  contentType?: string;
}

/** Options of {@link runWrk}. */
export interface WrkOptions {
  connections: number;
  seconds: number;
  /** @default 2 (one per core) */
  threads?: number;
  /** Count every status code; costs wrk a Lua call per response, so off for the fastest runs. */
  countStatus?: boolean;
  /** Per-request timeout. @default 10 */
  timeoutSeconds?: number;
}

/** What one wrk run measured. */
export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  /** Request body bytes sent per second (bodies are cycled evenly), in MB/s. */
  bodyMBps: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  /** Status code → responses; empty unless `countStatus`. */
  codes: Record<string, number>;
}

const SEPARATOR = "\x1e"; // ASCII record separator: never inside JSON or a request line

const LUA = `
local reqs = {}
local idx = 0
local threads = {}
local nthreads = 0
counts = {}

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  for rec in string.gmatch(data, "([^\\30]+)") do
    local nl = string.find(rec, "\\n", 1, true)
    local head = string.sub(rec, 1, nl - 1)
    local body = string.sub(rec, nl + 1)
    local method, path, ctype = string.match(head, "^(%S+) (%S+) ?(%S*)$")
    local headers = {}
    if ctype ~= "" then headers["Content-Type"] = ctype end
    if body == "" then body = nil end
    table.insert(reqs, wrk.format(method, path, headers, body))
  end
  idx = ((tid or 1) * 7919) % #reqs
end

function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end

%RESPONSE%

function done(summary, latency, requests)
  local codes = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    if c then
      for k, v in pairs(c) do codes[tostring(k)] = (codes[tostring(k)] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(codes) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"latency_us":{"p50":%d,"p90":%d,"p99":%d,' ..
    '"p999":%d,"max":%d,"mean":%.1f},"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d},"codes":{%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ",")))
end
`;

const RESPONSE_COUNTER = `
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
`;

/** Runs wrk against `baseUrl`, cycling through `requests`. */
export async function runWrk(
  baseUrl: string,
  requests: WrkRequest[],
  options: WrkOptions,
): Promise<WrkResult> {
  if (requests.length === 0) throw new Error("wrk needs at least one request");
  const dir = await tempDir("wrk");
  const reqPath = join(dir, "requests");
  const scriptPath = join(dir, "script.lua");
  const records = requests.map((r) =>
    `${r.method} ${r.path}${r.contentType ? ` ${r.contentType}` : ""}\n${r.body ?? ""}`
  );
  await Deno.writeTextFile(reqPath, records.join(SEPARATOR));
  await Deno.writeTextFile(
    scriptPath,
    LUA.replace("%RESPONSE%", options.countStatus ? RESPONSE_COUNTER : ""),
  );
  const threads = Math.min(options.threads ?? 2, options.connections);
  const { stdout } = await run("wrk", [
    `-t${threads}`,
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    `--timeout`,
    `${options.timeoutSeconds ?? 10}s`,
    "-s",
    scriptPath,
    baseUrl,
    "--",
    reqPath,
  ]);
  await Deno.remove(dir, { recursive: true });
  const line = stdout.split("\n").find((l) => l.startsWith("WRK_JSON "));
  if (!line) throw new Error(`wrk printed no summary: ${stdout.slice(-1000)}`);
  const raw = JSON.parse(line.slice("WRK_JSON ".length));
  const seconds = raw.duration_us / 1e6;
  const ms = (us: number) => Math.round(us / 10) / 100;
  const bodyBytes =
    requests.reduce((a, r) => a + new TextEncoder().encode(r.body ?? "").length, 0) /
    requests.length;
  return {
    requests: raw.requests,
    seconds,
    rps: raw.requests / seconds,
    bodyMBps: raw.requests * bodyBytes / seconds / 1e6,
    latencyMs: {
      p50: ms(raw.latency_us.p50),
      p90: ms(raw.latency_us.p90),
      p99: ms(raw.latency_us.p99),
      p999: ms(raw.latency_us.p999),
      max: ms(raw.latency_us.max),
      mean: ms(raw.latency_us.mean),
    },
    errors: raw.errors,
    codes: raw.codes,
  };
}

/** Whether wrk is installed; installs it from Debian when running as root. */
export async function ensureWrk(): Promise<void> {
  const has = async () =>
    (await run("sh", ["-c", "command -v wrk"], { allowFail: true })).code === 0;
  if (await has()) return;
  if (Deno.uid() !== 0) throw new Error("wrk is not installed (apt-get install -y wrk)");
  console.error("bench: installing wrk from Debian");
  await run("sh", [
    "-c",
    "apt-get install -y -qq wrk || (apt-get update -qq && apt-get install -y -qq wrk)",
  ]);
  if (!await has()) throw new Error("Cannot install wrk");
}
