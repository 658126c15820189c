/**
 * Items 5 and 6 on a generated lake (`scripts/gen_lake.ts`: 1M bronze events, or 10M with `--big`):
 *
 * 5. Silver + gold through a worker process's admin endpoint (`POST /admin/jobs/all`, what the
 *    cron runs), repeated until silver reports no more work (`SILVER_MAX_ROWS_PER_RUN` = 2M per
 *    run), beside DuckDB-wasm reading the whole bronze table and writing it once as Parquet.
 *    Ingest latency (`POST /events`, 1 connection) while the first run works, beside idle.
 * 6. The query API of the same process: p50/p99 of `GET /events?user_id=…` and `GET /stats` (the
 *    default last 24 h, and the whole 7 days) and `GET /users/:id`, beside `GET /health` of the
 *    same process; then the first query of a worker started afresh on the lake.
 *
 * @module
 */
import { LocalStore } from "../lake/storage/local.ts";
import { join } from "node:path";
import { LakeEngine } from "../lake/engine/engine.ts";
import { LakeJobs } from "../lake/jobs.ts";
import { createLogger } from "../shared/logger.ts";
import { clientEvents, DEFAULTS } from "./lib/events.ts";
import { TimedEngine } from "./lib/timed_engine.ts";
import { type Bench, pick, stopGateway } from "./lib/context.ts";
import { memoryRow, singleRequests } from "./http_ingest.ts";
import { ROOT, RssSampler, run, startMain, tempDir } from "./lib/proc.ts";
import { fmtInt, fmtMs } from "./lib/report.ts";
import { runWrk, type WrkRequest, type WrkResult } from "./lib/wrk.ts";
import { Lake } from "../lake/lake.ts";

const DAYS = 7;
const USERS = 10_000;
/** Beyond this many events, the lake is generated one day per gen_lake process (see benchLake). */
const GEN_CHUNK = 2_000_000;
/** Each query is measured over at least this many requests, when that takes at most MAX_QUERY_SECONDS. */
const MIN_QUERIES = 30;
const MAX_QUERY_SECONDS = 90;

interface JobReport {
  status: string;
  error?: string;
  duration_ms: number;
  rows: number;
  silver?: { rows_in: number; more: boolean; duration_ms: number };
  gold?: { duration_ms: number; rows: { user_daily_features: number; daily_type_metrics: number } };
}

export async function benchLake(b: Bench): Promise<void> {
  const events = b.big ? 10_000_000 : pick(b, 1_000_000, 100_000);
  const dir = await tempDir("lake");
  const lakeDir = join(dir, "lake");

  // gen_lake writes through one DuckDB-wasm engine, whose memory grows with every row (see item
  // 7); past a few million rows its writes fail or come out corrupt. So a big lake is written by
  // one gen_lake process per day (≤ ~1.5M events each), oldest day first: the bronze then arrives
  // in received_at order, as a gateway writes it.
  const t0 = performance.now();
  const genReports: Record<string, unknown>[] = [];
  const chunks = events > GEN_CHUNK ? DAYS : 1;
  const today = Date.parse(`${new Date().toISOString().slice(0, 10)}T00:00:00Z`);
  for (let k = 0, done = 0; k < chunks; k++) {
    const n = Math.round((events * (k + 1)) / chunks) - done;
    const start = new Date(today - (DAYS - 1 - (chunks > 1 ? k : 0)) * 86_400_000);
    const gen = await run(Deno.execPath(), [
      "run",
      "--allow-all",
      join(ROOT, "scripts", "gen_lake.ts"),
      "--lake",
      lakeDir,
      "--events",
      String(n),
      "--days",
      String(chunks > 1 ? 1 : DAYS),
      "--start",
      start.toISOString().slice(0, 10),
      "--users",
      String(USERS),
      "--seed",
      String(42 + k),
    ]);
    genReports.push(JSON.parse(gen.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>);
    done += n;
  }
  b.report.details.gen_lake = { runs: genReports, wall_ms: Math.round(performance.now() - t0) };
  console.error(`bench: 5 generated ${fmtInt(events)} bronze events`);
  // A copy of the bronze for timing the jobs' statements in this process afterwards.
  const timedLake = join(dir, "timed_lake");
  await run("cp", ["-a", lakeDir, timedLake]);

  const token = crypto.randomUUID();
  const worker = await startMain({
    LAKE_DIR: lakeDir,
    WAL_DIR: join(dir, "wal"),
    DEAD_LETTER_DIR: join(dir, "dead_letter"),
    ADMIN_TOKEN: token,
  });

  // 5: silver + gold until silver has nothing left; ingest (one connection of single-event
  // POSTs) measured idle first, then while the first run works.
  const ingest = singleRequests(clientEvents(2_000));
  const ingestOpts = { connections: 1, threads: 1, seconds: pick(b, 10, 2) };
  const ingestIdle = await runWrk(worker.url, ingest, ingestOpts);
  const rss = await RssSampler.start(worker.pid);
  const runs: JobReport[] = [];
  let failure: string | undefined;
  let ingestDuringJob: WrkResult | undefined;
  for (let i = 0; i < 20; i++) {
    const during = i === 0 ? runWrk(worker.url, ingest, ingestOpts) : undefined;
    const res = await fetch(`${worker.url}/admin/jobs/all`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    if (during) ingestDuringJob = await during;
    const body = await res.json() as JobReport & { report?: JobReport; error?: unknown };
    if (res.status !== 200) {
      // A failed job is a finding, not a harness failure: keep it, go on with the queries.
      failure = `run ${i + 1} answered ${res.status}: ${
        JSON.stringify(body.report?.error ?? body.error).slice(0, 300)
      }`;
      b.report.details.lake_job_failure = body;
      console.error(`bench: 5 ${failure}`);
      break;
    }
    runs.push(body);
    console.error(
      `bench: 5 run ${i + 1}: ${body.silver?.rows_in ?? 0} rows, ${body.duration_ms} ms`,
    );
    if (!body.silver?.more) break;
  }
  const jobsMem = await rss.stop();
  const sum = (f: (r: JobReport) => number) => runs.reduce((a, r) => a + f(r), 0);
  const rowsIn = sum((r) => r.silver?.rows_in ?? 0);
  const totalMs = sum((r) => r.duration_ms);
  const silverMs = sum((r) => r.silver?.duration_ms ?? 0);
  const goldMs = sum((r) => r.gold?.duration_ms ?? 0);
  const rate = totalMs > 0 ? rowsIn / (totalMs / 1000) : 0;
  const limit = await scanLimit(lakeDir, join(dir, "copy.parquet"));
  b.report.details.lake_jobs = {
    runs,
    rows_in: rowsIn,
    total_ms: totalMs,
    silver_ms: silverMs,
    gold_ms: goldMs,
    rss: jobsMem,
    duckdb_copy: limit,
  };
  b.report.add({
    id: "5a",
    what: `Silver + gold on ${fmtInt(events)} bronze events (${runs.length} runs of ` +
      `POST /admin/jobs/all, summed)`,
    figure: `${fmtInt(rate)} rows/s: ${(totalMs / 1000).toFixed(1)} s (silver ${
      (silverMs / 1000).toFixed(1)
    } s, gold ${(goldMs / 1000).toFixed(1)} s) for ${fmtInt(rowsIn)} rows${
      failure ? `; then FAILED: ${failure}` : ""
    }`,
    value: rate,
    unit: "rows/s",
    limit: `DuckDB-wasm reading all bronze and writing it once: ${fmtInt(limit.rowsPerSec)} rows/s`,
    ratio: `${((100 * rate) / limit.rowsPerSec).toFixed(0)}%`,
    target: "≥ 250,000 rows/s",
    pass: rate >= 250_000 && !failure,
  });
  if (ingestDuringJob) {
    const idle = ingestIdle.latencyMs.p99, busy = ingestDuringJob.latencyMs.p99;
    b.report.details.ingest_during_job = { idle: ingestIdle, during: ingestDuringJob };
    b.report.add({
      id: "5b",
      what: "POST /events (one event, 1 connection) while the first job run works",
      figure: `p50 ${fmtMs(ingestDuringJob.latencyMs.p50)} / p99 ${fmtMs(busy)} ms`,
      value: busy,
      unit: "ms",
      limit: `the same load on the same process, idle: p99 ${fmtMs(idle)} ms`,
      ratio: `${(busy / Math.max(idle, 0.001)).toFixed(1)}×`,
      target: "p99 ≤ 2× idle",
      pass: busy <= 2 * idle,
    });
  }
  memoryRow(b, "7f", "worker during 5 (silver + gold)", jobsMem, 1024);
  if (rate < 250_000) {
    b.report.limitedBy(
      "5",
      `silver ${fmtInt(rowsIn / (silverMs / 1000))} rows/s, gold ${
        fmtInt(rowsIn / Math.max(goldMs / 1000, 0.001))
      } bronze rows/s; the DuckDB-wasm scan + write floor is ${fmtInt(limit.rowsPerSec)} rows/s.`,
    );
  }

  // 6: the query API of the same process.
  const qrss = await RssSampler.start(worker.pid);
  const seconds = pick(b, 15, 3);
  const weekFrom = new Date(Date.now() - DAYS * 86_400_000).toISOString();
  const users = (q: string) =>
    Array.from({ length: 200 }, (_, i): WrkRequest => ({
      method: "GET",
      path: `/events?user_id=u-${String((i * 7919) % USERS).padStart(5, "0")}${q}`,
    }));
  const cases: [string, string, WrkRequest[]][] = [
    ["6a", "GET /events?user_id=… (default: last 24 h)", users("")],
    ["6b", `GET /events?user_id=…&from=<${DAYS} days ago>`, users(`&from=${weekFrom}`)],
    ["6c", "GET /stats (default: last 24 h)", [{ method: "GET", path: "/stats" }]],
    ["6d", `GET /stats?from=<${DAYS} days ago>`, [{
      method: "GET",
      path: `/stats?from=${weekFrom}`,
    }]],
    [
      "6e",
      "GET /users/:id",
      users("").map((r) => ({ ...r, path: r.path.replace("/events?user_id=", "/users/") })),
    ],
  ];
  const health = await runWrk(worker.url, [{ method: "GET", path: "/health" }], {
    connections: 1,
    threads: 1,
    seconds: 2,
  });
  const queryResults: Record<string, unknown> = { health };
  for (const [id, what, reqs] of cases) {
    await runWrk(worker.url, reqs.slice(0, 5), { connections: 1, threads: 1, seconds: 1 }); // warm
    const opts = { connections: 1, threads: 1, seconds, countStatus: true, timeoutSeconds: 30 };
    let r = await runWrk(worker.url, reqs, opts);
    if (!b.smoke && r.requests < MIN_QUERIES) {
      // Slow queries: run long enough for MIN_QUERIES of them, up to MAX_QUERY_SECONDS.
      const need = Math.ceil((MIN_QUERIES * r.seconds) / Math.max(1, r.requests));
      r = await runWrk(worker.url, reqs, { ...opts, seconds: Math.min(MAX_QUERY_SECONDS, need) });
    }
    queryResults[id] = r;
    const bad = Object.entries(r.codes).filter(([c]) => c !== "200");
    b.report.add({
      id,
      what: `${what}, 1 connection, ${fmtInt(events)}-event lake`,
      figure: `p50 ${fmtMs(r.latencyMs.p50)} / p99 ${fmtMs(r.latencyMs.p99)} ms (${
        fmtInt(r.requests)
      } requests${bad.length ? `; ${bad.map(([c, n]) => `${n}× ${c}`).join(", ")}` : ""})`,
      value: r.latencyMs.p99,
      unit: "ms",
      limit: `GET /health p99 ${fmtMs(health.latencyMs.p99)} ms`,
      target: b.big ? "p99 < 200 ms (10M)" : "p99 < 200 ms (target is on 10M)",
      pass: r.latencyMs.p99 < 200 && bad.length === 0,
    });
  }
  const queryMem = await qrss.stop();
  b.report.details.query = { ...queryResults, rss: queryMem };
  memoryRow(b, "7g", "worker during 6 (queries)", queryMem);
  await stopGateway(b, "lake_worker", worker);
  await firstQuery(b, events, {
    LAKE_DIR: lakeDir,
    WAL_DIR: join(dir, "wal"),
    DEAD_LETTER_DIR: join(dir, "dead_letter"),
  }, `/events?user_id=u-00042&from=${weekFrom}`);
  if (rate < 250_000) await jobStages(b, timedLake);
}

/** 6f: a worker started afresh on the lake, and the time its first query takes. */
async function firstQuery(
  b: Bench,
  events: number,
  env: Record<string, string>,
  path: string,
): Promise<void> {
  const worker = await startMain(env);
  try {
    const t = performance.now();
    const res = await fetch(`${worker.url}${path}`);
    await res.arrayBuffer();
    const ms = performance.now() - t;
    const t2 = performance.now();
    await (await fetch(`${worker.url}${path}`)).arrayBuffer();
    const again = performance.now() - t2;
    b.report.details.first_query = { ms, again_ms: again, status: res.status };
    b.report.add({
      id: "6f",
      what: `First query after start (GET /events?user_id=…, ${DAYS} days), ${
        fmtInt(events)
      }-event lake`,
      figure: `${fmtMs(ms)} ms (HTTP ${res.status})`,
      value: ms,
      unit: "ms",
      limit: `the same query right after: ${fmtMs(again)} ms`,
      target: "< 1000 ms",
      pass: ms < 1000 && res.status === 200,
    });
  } finally {
    await stopGateway(b, "lake_worker_restart", worker);
  }
}

/** One run of silver + gold in this process on a copy of the bronze, timed per statement shape. */
async function jobStages(b: Bench, lakeDir: string): Promise<void> {
  const engine = new TimedEngine({ timeoutMs: 30 * 60_000 });
  try {
    const jobs = new LakeJobs(
      engine,
      new Lake(await LocalStore.open(lakeDir), engine),
      createLogger({ level: "error" }),
      {
        recycleEngine: false,
        silver: { maxRowsPerRun: DEFAULTS.SILVER_MAX_ROWS_PER_RUN },
      },
    );
    const report = await jobs.run("all");
    const { total_ms, top } = engine.summary(5);
    b.report.details.job_stages = { report, times: engine.times };
    b.report.limitedBy(
      "5",
      `one run of silver + gold (${fmtInt(report.silver?.rows_in ?? 0)} rows, ${
        (report.duration_ms / 1000).toFixed(1)
      } s) timed per DuckDB call, in this process: ${(total_ms / 1000).toFixed(1)} s inside the ` +
        `engine, of which ${top.join("; ")}.`,
    );
  } finally {
    engine.close();
  }
}

/** DuckDB-wasm (one engine, this process) reading every bronze row and writing one Parquet file. */
async function scanLimit(lakeDir: string, out: string) {
  const engine = new LakeEngine({ timeoutMs: 30 * 60_000 });
  try {
    const glob = join(lakeDir, "bronze", "events", "*", "*", "*.parquet");
    const [{ n }] = await engine.query<{ n: number | bigint }>(
      `SELECT count(*) AS n FROM read_parquet('${glob}', union_by_name = true)`,
    ) as [{ n: number | bigint }];
    const t0 = performance.now();
    await engine.exec(
      `COPY (SELECT * FROM read_parquet('${glob}', hive_partitioning = true, union_by_name = true)) TO '${out}' ` +
        "(FORMAT PARQUET, COMPRESSION ZSTD)",
    );
    const ms = performance.now() - t0;
    await Deno.remove(out).catch(() => {});
    return { rows: Number(n), ms: Math.round(ms), rowsPerSec: Number(n) / (ms / 1000) };
  } finally {
    engine.close();
  }
}
