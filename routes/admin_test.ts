// In-process tests of the admin routes (routes/admin.ts), mounted like routes/app.ts mounts route
// groups. Most use a stub runner; one runs the real jobs on an empty lake.
import { lakeOf } from "../tests/lake_helpers.ts";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { LakeEngine } from "../lake/engine/engine.ts";
import { type JobName, type JobReport, LakeJobs } from "../lake/jobs.ts";
import { silentLogger } from "../shared/logger.ts";
import { adminRoutes, safeEqual } from "./admin.ts";

const TOKEN = "s3cret-token-with-enough-entropy";

function report(job: JobName, status: JobReport["status"]): JobReport {
  return {
    job,
    status,
    started_at: new Date(0).toISOString(),
    duration_ms: 1,
    rows: 0,
    files: 0,
    partitions: 0,
    ...(status === "skipped" ? { reason: "locked" } : {}),
    ...(status === "failed" ? { error: "boom" } : {}),
  };
}

/** A runner stand-in: answers with `status`, or looks busy. */
function stub(status: JobReport["status"] = "ok", running?: JobName) {
  const calls: JobName[] = [];
  const jobs = {
    get running() {
      return running;
    },
    stats: {},
    run: (name: JobName) => {
      calls.push(name);
      return Promise.resolve(report(name, status));
    },
  } as unknown as LakeJobs;
  return { jobs, calls };
}

function app(jobs: LakeJobs, token: string | undefined) {
  const a = new Hono<{ Variables: { requestId: string } }>();
  a.use(requestId());
  a.route("/", adminRoutes({ jobs, token }));
  return a;
}

const post = (a: ReturnType<typeof app>, path: string, auth?: string) =>
  a.request(path, { method: "POST", headers: auth === undefined ? {} : { authorization: auth } });

Deno.test("safeEqual() compares whole secrets", () => {
  assert.ok(safeEqual("abc", "abc"));
  assert.ok(!safeEqual("abc", "abd"));
  assert.ok(!safeEqual("abc", "abcd"));
  assert.ok(!safeEqual("", "a"));
});

Deno.test("admin: 404 when no token is configured (admin disabled)", async () => {
  const { jobs, calls } = stub();
  for (const token of [undefined, ""]) {
    const res = await post(app(jobs, token), "/admin/jobs/all", `Bearer ${TOKEN}`);
    assert.equal(res.status, 404);
    assert.equal((await res.json()).error.code, "not_found");
  }
  assert.deepEqual(calls, []);
});

Deno.test("admin: 401 without a token, with a wrong one or another scheme", async (t) => {
  const { jobs, calls } = stub();
  const a = app(jobs, TOKEN);
  for (
    const auth of [
      undefined,
      "",
      "Bearer",
      "Bearer ",
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Basic ${btoa(`admin:${TOKEN}`)}`,
      TOKEN,
      `Bearer ${TOKEN} extra`,
    ]
  ) {
    await t.step(JSON.stringify(auth ?? null), async () => {
      const res = await post(a, "/admin/jobs/all", auth);
      assert.equal(res.status, 401);
      assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="admin"');
      const body = await res.json();
      assert.equal(body.error.code, "unauthorized");
      assert.ok(!JSON.stringify(body).includes(TOKEN));
    });
  }
  const stats = await (app(jobs, TOKEN)).request("/admin/jobs");
  assert.equal(stats.status, 401);
  assert.deepEqual(calls, []);
});

Deno.test("admin: a valid token runs the job and answers its report", async () => {
  const { jobs, calls } = stub();
  const a = app(jobs, TOKEN);
  for (const auth of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`]) {
    const res = await post(a, "/admin/jobs/silver", auth);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.job, "silver");
    assert.equal(body.status, "ok");
  }
  assert.deepEqual(calls, ["silver", "silver"]);
  const stats = await a.request("/admin/jobs", {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(stats.status, 200);
  assert.deepEqual((await stats.json()).jobs, ["silver", "gold", "all"]);
});

Deno.test("admin: 400 for an unknown job, listing the allowed names", async () => {
  const { jobs, calls } = stub();
  const res = await post(app(jobs, TOKEN), "/admin/jobs/bronze", `Bearer ${TOKEN}`);
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.error.code, "unknown_job");
  assert.deepEqual(body.error.allowed, ["silver", "gold", "all"]);
  assert.deepEqual(calls, []);
});

Deno.test("admin: 409 while a job runs here or holds the lock elsewhere; 500 when it fails", async () => {
  const busy = stub("ok", "gold");
  let res = await post(app(busy.jobs, TOKEN), "/admin/jobs/all", `Bearer ${TOKEN}`);
  assert.equal(res.status, 409);
  assert.equal((await res.json()).error.code, "job_running");
  assert.deepEqual(busy.calls, []);

  const locked = stub("skipped");
  res = await post(app(locked.jobs, TOKEN), "/admin/jobs/all", `Bearer ${TOKEN}`);
  assert.equal(res.status, 409);
  const body = await res.json();
  assert.equal(body.error.code, "job_running");
  assert.equal(body.report.reason, "locked");

  const failing = stub("failed");
  res = await post(app(failing.jobs, TOKEN), "/admin/jobs/gold", `Bearer ${TOKEN}`);
  assert.equal(res.status, 500);
  const failed = await res.json();
  assert.equal(failed.error.code, "job_failed");
  assert.equal(failed.report.error, "boom");
});

Deno.test("admin: runs the real jobs on an empty lake", async () => {
  const lake = await Deno.makeTempDir({ prefix: "admin_test_" });
  const engine = new LakeEngine();
  try {
    const jobs = new LakeJobs(engine, await lakeOf(lake, engine), silentLogger);
    const res = await post(app(jobs, TOKEN), "/admin/jobs/all", `Bearer ${TOKEN}`);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.status, "ok");
    assert.equal(body.silver.rows_in, 0);
    assert.deepEqual(body.gold.dates, []);
    assert.equal(jobs.stats.all.runs, 1);
  } finally {
    engine.close();
    await Deno.remove(lake, { recursive: true });
  }
});
