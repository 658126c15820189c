/**
 * `POST /admin/jobs/:name` runs a lake job now (`silver`, `gold` or `all`) and answers its report;
 * `GET /admin/jobs` answers the jobs' counters. Both need `Authorization: Bearer <token>`. Without
 * a configured token the admin routes do not exist (404).
 *
 * | Status | When                                                                  |
 * | ------ | --------------------------------------------------------------------- |
 * | 200    | The job ran; the body is its report                                   |
 * | 400    | Unknown job name (`error.code: unknown_job`, `error.allowed`)        |
 * | 401    | Missing or wrong token                                                |
 * | 404    | Admin is disabled (no token configured)                               |
 * | 409    | A job is already running, here or in another process (`job_running`) |
 * | 500    | The job failed (`job_failed`); `report` has the details               |
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { Hono } from "hono";
import { isJobName, JOBS, type LakeJobs } from "../lake/jobs.ts";

/** Compares two secrets in time independent of where they differ (and of their lengths). */
export function safeEqual(a: string, b: string): boolean {
  const h = (s: string) => new Uint8Array(createHash("sha256").update(s).digest());
  return timingSafeEqual(h(a), h(b));
}

type Env = { Variables: { requestId: string } };

function fail(c: Context<Env>, status: 400 | 401 | 404 | 409 | 500, body: Record<string, unknown>) {
  return c.json({ ...body, request_id: c.get("requestId") }, status);
}

/** The admin routes. */
export function adminRoutes({ jobs, token }: { jobs: LakeJobs; token: string | undefined }) {
  const app = new Hono<Env>();

  app.use("/admin/*", async (c, next) => {
    if (!token) {
      return fail(c, 404, {
        error: { code: "not_found", message: `No route for ${c.req.method} ${c.req.path}` },
      });
    }
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(c.req.header("authorization") ?? "");
    if (!m || !safeEqual(m[1]!, token)) {
      c.header("WWW-Authenticate", 'Bearer realm="admin"');
      return fail(c, 401, {
        error: { code: "unauthorized", message: "A valid admin bearer token is required" },
      });
    }
    await next();
  });

  app.get(
    "/admin/jobs",
    (c) => c.json({ jobs: JOBS, running: jobs.running ?? null, stats: jobs.stats }),
  );

  app.post("/admin/jobs/:name", async (c) => {
    const name = c.req.param("name");
    if (!isJobName(name)) {
      return fail(c, 400, {
        error: {
          code: "unknown_job",
          message: `Unknown job "${name.slice(0, 64)}"; use one of ${JOBS.join(", ")}`,
          allowed: JOBS,
        },
      });
    }
    if (jobs.running) {
      return fail(c, 409, {
        error: { code: "job_running", message: `The ${jobs.running} job is running` },
      });
    }
    const report = await jobs.run(name);
    if (report.status === "skipped") {
      return fail(c, 409, {
        error: { code: "job_running", message: "Another lake job holds the jobs lock" },
        report,
      });
    }
    if (report.status === "failed") {
      return fail(c, 500, {
        error: { code: "job_failed", message: `The ${name} job failed` },
        report,
      });
    }
    return c.json(report, 200);
  });
  return app;
}
