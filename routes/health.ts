/**
 * `GET /health` (the process is alive) and `GET /ready` (it can take events now).
 *
 * @module
 */
import { Hono } from "hono";

/** State of one dependency. */
export type DependencyState = "ok" | "degraded" | "down";

/** One readiness check: a name and a probe that answers quickly. */
export interface ReadinessCheck {
  name: string;
  /** `down` on a check marked `critical` makes /ready answer 503. */
  critical: boolean;
  probe: () => Promise<{ state: DependencyState; detail?: string }>;
}

/** The health routes. */
export function healthRoutes(
  { overloaded, checks }: {
    /** Why events are refused right now (ingest roles only). */
    overloaded?: () => string | undefined;
    checks: ReadinessCheck[];
  },
) {
  const app = new Hono();
  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/ready", async (c) => {
    const results: Record<string, { state: DependencyState; detail?: string }> = {};
    let ready = true;
    await Promise.all(checks.map(async (check) => {
      let r: { state: DependencyState; detail?: string };
      try {
        r = await check.probe();
      } catch (err) {
        r = { state: "down", detail: (err as Error).message };
      }
      results[check.name] = r;
      if (check.critical && r.state === "down") ready = false;
    }));
    if (overloaded) {
      const busy = overloaded();
      results.ingest = busy ? { state: "down", detail: busy } : { state: "ok" };
      if (busy) ready = false;
    }
    return c.json(
      { status: ready ? "ready" : "unavailable", dependencies: results },
      ready ? 200 : 503,
    );
  });
  return app;
}
