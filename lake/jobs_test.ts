import assert from "node:assert/strict";
import { join } from "node:path";
import { lakeOf, testEvent } from "../tests/lake_helpers.ts";
import { createLogger } from "../shared/logger.ts";
import { BronzeWriter } from "./bronze.ts";
import { LakeEngine } from "./engine/engine.ts";
import { isJobName, JOBS, LakeJobs } from "./jobs.ts";
import { JOB_KEYS } from "./layout.ts";
import { withLake as withLakeIn } from "./engine/testing.ts";

const withLake = (fn: (lake: string, engine: LakeEngine) => Promise<void>) =>
  withLakeIn("jobs_test_", fn);

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "debug",
    write: (_l, line) => lines.push(JSON.parse(line)),
  });
  return { lines, logger };
}

async function seed(lake: string) {
  const engine = new LakeEngine();
  const events = [
    testEvent({ type: "login", user_id: "u1" }),
    testEvent({ type: "purchase", event_type: "purchase", user_id: "u1", payload: { amount: 3 } }),
  ];
  await new BronzeWriter(engine, (await lakeOf(lake, engine)).bronze).write({
    topic: "wal",
    partition: 0,
    firstOffset: 0,
    lastOffset: 1,
    rows: events.map((event, offset) => ({ offset, event })),
  });
  engine.close();
}

Deno.test("JOBS lists the runnable jobs", () => {
  assert.deepEqual([...JOBS], ["silver", "gold", "all"]);
  assert.ok(isJobName("gold"));
  assert.ok(!isJobName("GOLD"));
  assert.ok(!isJobName("../x"));
});

Deno.test("LakeJobs.run(all): silver then gold, a report, one log line and counters", async () => {
  await withLake(async (lake, engine) => {
    await seed(lake);
    const { lines, logger } = capture();
    const jobs = new LakeJobs(engine, await lakeOf(lake, engine), logger);
    const r = await jobs.run("all");
    assert.equal(r.status, "ok");
    assert.equal(r.silver?.rows_in, 2);
    assert.equal(r.silver?.rows_new.auth, 1);
    assert.deepEqual(r.gold?.dates, ["2026-11-23"]);
    assert.equal(r.rows, 2 + r.gold!.rows.user_daily_features + r.gold!.rows.daily_type_metrics);
    assert.equal(r.partitions, r.silver!.partitions_rewritten + 2);
    assert.equal(lines.length, 1);
    assert.deepEqual(
      Object.keys(lines[0]!).filter((k) => !["time", "level", "msg"].includes(k)).sort(),
      ["duration_ms", "files", "job", "partitions", "rows", "status"],
    );
    assert.equal(lines[0]!.job, "all");
    assert.equal(jobs.stats.all.runs, 1);
    assert.equal(jobs.stats.silver.runs, 1);
    assert.equal(jobs.stats.gold.runs, 1);
    assert.equal(jobs.stats.silver.last?.rows, 2);

    // The engine was recycled after the work and still answers.
    const again = await jobs.run("all");
    assert.equal(again.status, "ok");
    assert.equal(again.rows, 0);
    assert.equal(jobs.stats.all.runs, 2);
  });
});

Deno.test("LakeJobs: the jobs lock makes a concurrent run skip", async () => {
  await withLake(async (lake, engine) => {
    await seed(lake);
    const { lines, logger } = capture();
    const jobs = new LakeJobs(engine, await lakeOf(lake, engine), logger);

    // Two runs at once in one process: the second one is skipped.
    const [a, b] = await Promise.all([jobs.run("silver"), jobs.run("gold")]);
    assert.equal(a.status, "ok");
    assert.equal(b.status, "skipped");
    assert.equal(b.reason, "locked");
    assert.equal(jobs.stats.gold.skipped, 1);

    // Another process (here: another open file description) holds the lock.
    await Deno.mkdir(join(lake, "_progress"), { recursive: true });
    const other = await Deno.open(join(lake, JOB_KEYS.lock), { create: true, write: true });
    await other.lock(true);
    const otherEngine = new LakeEngine();
    const skipped = await new LakeJobs(otherEngine, await lakeOf(lake, otherEngine), logger).run(
      "all",
    );
    otherEngine.close();
    assert.equal(skipped.status, "skipped");
    assert.equal(skipped.reason, "locked");
    assert.ok(lines.some((l) => l.msg === "Lake job skipped: another run holds the jobs lock"));
    await other.unlock();
    other.close();
    const ran = await jobs.run("gold");
    assert.equal(ran.status, "ok");
    assert.deepEqual(ran.gold?.dates, ["2026-11-23"]);
  });
});

Deno.test("LakeJobs: a failing job is reported, counted and logged, and frees the lock", async () => {
  await withLake(async (lake, engine) => {
    await Deno.mkdir(join(lake, "_progress"), { recursive: true });
    await Deno.writeTextFile(join(lake, JOB_KEYS.silverProgress), "{not json");
    const { lines, logger } = capture();
    const jobs = new LakeJobs(engine, await lakeOf(lake, engine), logger);
    const r = await jobs.run("all");
    assert.equal(r.status, "failed");
    assert.match(r.error!, /JSON/);
    assert.equal(jobs.stats.all.failures, 1);
    assert.equal(jobs.stats.silver.failures, 1);
    assert.equal(lines.at(-1)!.level, "error");
    await Deno.remove(join(lake, JOB_KEYS.silverProgress));
    assert.equal((await jobs.run("all")).status, "ok");
  });
});
