/**
 * Runs one lake job once and prints its report as JSON on stdout (logs go to stderr).
 *
 * ```sh
 * deno run -A scripts/jobs.ts [silver|gold|all] [--lake DIR]
 * ```
 *
 * The lake (`--lake` takes a path or `s3://bucket/prefix`) defaults to the gateway's `LAKE_URL`
 * or `LAKE_DIR` (see `config.ts`), with its S3 settings; `JOBS_TIMEOUT_MS` and
 * `SILVER_MAX_ROWS_PER_RUN` apply as in the gateway. Exit code: 0 done, 1 failed, 3 skipped
 * (another run holds the jobs lock), 2 bad arguments. Safe next to a running gateway: the jobs
 * lock keeps runs apart, and silver reads committed bronze batches only.
 *
 * @module
 */
import { ConfigError, lakeUrl, loadConfig, s3Options } from "../config.ts";
import { LakeEngine } from "../lake/engine/engine.ts";
import { isJobName, JOBS, LakeJobs } from "../lake/jobs.ts";
import { lakeLocation, openStore } from "../lake/storage/open.ts";
import { createLogger, type Level } from "../shared/logger.ts";
import { Lake } from "../lake/lake.ts";

function usage(message: string): never {
  console.error(`${message}\nUsage: deno run -A scripts/jobs.ts [${JOBS.join("|")}] [--lake DIR]`);
  Deno.exit(2);
}

// The same LAKE_DIR, JOBS_TIMEOUT_MS and SILVER_MAX_ROWS_PER_RUN the gateway's runs use.
let config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  usage(err.message);
}
const args = [...Deno.args];
let lakeDir = lakeUrl(config);
const li = args.indexOf("--lake");
if (li >= 0) {
  const v = args[li + 1];
  if (!v) usage("--lake needs a directory");
  lakeDir = v;
  args.splice(li, 2);
}
const job = args[0] ?? "all";
if (args.length > 1) usage(`Unexpected arguments: ${args.slice(1).join(" ")}`);
if (!isJobName(job)) usage(`Unknown job "${job}"`);

const level = (Deno.env.get("LOG_LEVEL") || "info") as Level;
const logger = createLogger({ level, write: (_level, line) => console.error(line) }, {
  component: "jobs",
});
const engines = Array.from(
  { length: config.JOBS_ENGINES },
  () => new LakeEngine({ timeoutMs: config.JOBS_TIMEOUT_MS, niceness: config.JOBS_NICENESS }),
);
const store = await openStore(lakeLocation(lakeDir), s3Options(config));
const jobs = new LakeJobs(engines, new Lake(store, engines[0]!), logger, {
  recycleEngine: false,
  silver: {
    maxRowsPerRun: config.SILVER_MAX_ROWS_PER_RUN,
    maxPastDays: config.EVENT_MAX_PAST_DAYS,
  },
  retentionMs: config.LAKE_RETENTION_HOURS * 3_600_000,
});
try {
  const report = await jobs.run(job);
  console.log(JSON.stringify(report, null, 2));
  Deno.exitCode = report.status === "ok" ? 0 : report.status === "skipped" ? 3 : 1;
} finally {
  for (const engine of engines) engine.close();
  await store.close();
}
