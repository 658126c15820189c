/**
 * `deno task bench`: measures the product on this machine, each figure beside a limit measured in
 * the same run, and writes a Markdown table (stdout and `bench/results/latest.md`) and JSON
 * (`bench/results/latest.json`). Starts what it needs (Kafka through `scripts/kafka.sh`, Redis,
 * the Upstash bridge, gateway processes on temporary directories) and cleans up after itself.
 *
 * ```sh
 * deno task bench                 # the full run (~15 min; lake items on 1M events)
 * deno task bench --big           # lake items on 10M events
 * deno task bench:smoke           # seconds and tiny sizes: checks the harness, not the product
 * deno task bench --only 3,4      # some items (1–11; 1 and 2 run together; 7 runs with all of
 *                                 # them, `--only overload` runs its overload part alone)
 * ```
 *
 * Smoke runs write `bench/results/smoke.{md,json}`, `--only` runs `partial.{md,json}`; only
 * complete full runs replace `latest.*`. Each run also keeps a timestamped JSON copy there (not
 * committed). `deno task bench --render` rebuilds `latest.md` from `latest.json` and
 * `bench/findings.md` (the profiled explanation of each miss) without measuring.
 *
 * @module
 */
import { join } from "node:path";
import { benchCpu } from "./cpu_per_event.ts";
import { benchFreshness } from "./freshness.ts";
import { benchWindows } from "./fraud_windows.ts";
import { benchIngest, benchOverload } from "./http_ingest.ts";
import { benchKafkaLake } from "./kafka_lake.ts";
import { benchLake } from "./lake_jobs.ts";
import { benchObjectStore } from "./object_store.ts";
import { benchScaling } from "./scaling.ts";
import type { Bench } from "./lib/context.ts";
import { loadAverage, ROOT, runCleanups } from "./lib/proc.ts";
import { Report } from "./lib/report.ts";
import { ensureKafka, ensureRedis } from "./lib/services.ts";
import { ensureWrk } from "./lib/wrk.ts";

const args = Deno.args;
const smoke = args.includes("--smoke");
const big = args.includes("--big");
const onlyArg = args.indexOf("--only");
const only = onlyArg >= 0
  ? new Set((args[onlyArg + 1] ?? "").split(",").map((s) => s.trim()).filter(Boolean))
  : undefined;
const wants = (...items: string[]) => !only || items.some((i) => only.has(i));

async function machine(): Promise<string> {
  const cpu = await Deno.readTextFile("/proc/cpuinfo");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpu)?.[1]?.trim() ?? "unknown CPU";
  const cores = navigator.hardwareConcurrency;
  const memGb = Deno.systemMemoryInfo().total / 2 ** 30;
  return `${cores} × ${model}, ${memGb.toFixed(0)} GB RAM, ${Deno.build.os}`;
}

const RESULTS = join(ROOT, "bench", "results");
const FINDINGS = join(ROOT, "bench", "findings.md");
const readFindings = () => Deno.readTextFile(FINDINGS).catch(() => undefined);

// `--render`: rebuild latest.md from latest.json and the current findings, without measuring.
if (args.includes("--render")) {
  const saved = JSON.parse(await Deno.readTextFile(join(RESULTS, "latest.json")));
  const again = Object.assign(new Report(saved.meta), {
    rows: saved.rows,
    limits: saved.limits,
    errors: saved.errors,
    details: saved.details,
  });
  const md = again.markdown(await readFindings());
  await Deno.writeTextFile(join(RESULTS, "latest.md"), md);
  console.log(md);
  Deno.exit(0);
}

const started = performance.now();
const report = new Report({
  started_at: new Date().toISOString(),
  mode: smoke ? "smoke" : "full",
  lake_events: big ? 10_000_000 : smoke ? 100_000 : 1_000_000,
  machine: await machine(),
  deno: Deno.version.deno,
  load_at_start: await loadAverage(),
  load_by_section: {},
});
const bench: Bench = { smoke, big, report };

Deno.addSignalListener("SIGINT", async () => {
  console.error("bench: interrupted; cleaning up");
  await runCleanups();
  Deno.exit(130);
});

const sections: [string, string[], (b: Bench) => Promise<void>][] = [
  ["1–2 HTTP ingest", ["1", "2", "7"], benchIngest],
  ["3 Kafka → lake", ["3", "7"], benchKafkaLake],
  ["4 window scoring", ["4"], benchWindows],
  ["5–6 lake jobs and queries", ["5", "6", "7"], benchLake],
  ["7 overload", ["7", "overload"], benchOverload],
  ["8 freshness", ["8"], benchFreshness],
  ["9 CPU per event", ["9"], benchCpu],
  ["10 object storage", ["10"], benchObjectStore],
  ["11 scaling with cores", ["11"], benchScaling],
];

try {
  await ensureWrk();
  if (wants("1", "2", "3", "7", "8", "9", "11")) await ensureKafka();
  if (wants("4")) await ensureRedis();
  for (const [name, items, fn] of sections) {
    if (!wants(...items)) continue;
    report.meta.load_by_section[name] = await loadAverage();
    console.error(`bench: ${name} (load ${report.meta.load_by_section[name]})`);
    try {
      await fn(bench);
    } catch (err) {
      const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
      console.error(`bench: ${name} failed: ${msg}`);
      report.errors[name] = (err as Error).message ?? String(err);
    }
  }
} finally {
  await runCleanups();
}

report.meta.load_at_end = await loadAverage();
report.meta.duration_s = (performance.now() - started) / 1000;
const md = report.markdown(smoke ? undefined : await readFindings());
console.log(md);

const dir = RESULTS;
await Deno.mkdir(dir, { recursive: true });
// Only a complete full run replaces the committed latest.*.
const name = smoke ? "smoke" : only ? "partial" : "latest";
const stamp = report.meta.started_at.replace(/[:.]/g, "-");
await Deno.writeTextFile(join(dir, `${name}.md`), md);
await Deno.writeTextFile(join(dir, `${name}.json`), report.json());
await Deno.writeTextFile(join(dir, `${stamp}-${report.meta.mode}.json`), report.json());
console.error(`bench: wrote ${join("bench", "results", `${name}.md`)} and ${name}.json`);
Deno.exit(Object.keys(report.errors).length > 0 ? 1 : 0);
