/**
 * `GET /health` (the process is alive) and `GET /ready` (it can take events now).
 *
 * @module
 */
import { Hono } from "hono";
import type { DependencyState, ProbeResult } from "../shared/health.ts";

export type { DependencyState, ProbeResult };

/** One readiness check: a name and a probe that answers quickly. */
export interface ReadinessCheck {
  name: string;
  /** `down` on a check marked `critical` makes /ready answer 503. */
  critical: boolean;
  probe: () => Promise<ProbeResult>;
}

/**
 * `probe`, run at most once per `reuseMs`: callers within that time get the last answer, and
 * callers while it runs share that run. So `/ready` polled in a loop costs one disk write, one
 * Redis ping and one Ollama call per `reuseMs`, not one per request. A probe that gives no answer
 * in `timeoutMs` counts as `down`.
 */
export function sharedProbe(
  probe: ReadinessCheck["probe"],
  reuseMs: number,
  now: () => number = () => performance.now(),
  timeoutMs = 5000,
): () => Promise<ProbeResult> {
  // `at` is when the answer arrived (undefined while the probe runs): it is fresh from then on.
  let last: { at?: number; result: Promise<ProbeResult> } | undefined;
  return () => {
    if (last && (last.at === undefined || now() - last.at < reuseMs)) return last.result;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = Promise.race([
      probe(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
      }),
    ]).catch((err): ProbeResult => ({ state: "down", detail: (err as Error).message }))
      .finally(() => clearTimeout(timer));
    const entry: { at?: number; result: Promise<ProbeResult> } = { result };
    last = entry;
    void result.then(() => entry.at = now());
    return result;
  };
}

/** The health routes. */
export function healthRoutes(
  { overloaded, checks, probeReuseMs = 1000 }: {
    /** Why events are refused right now (ingest roles only). */
    overloaded?: () => string | undefined;
    checks: ReadinessCheck[];
    /** How long one answer of a check is reused (see {@link sharedProbe}). @default 1000 */
    probeReuseMs?: number;
  },
) {
  const app = new Hono();
  const probes = checks.map((check) => ({ check, probe: sharedProbe(check.probe, probeReuseMs) }));
  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/ready", async (c) => {
    const results: Record<string, ProbeResult> = {};
    let ready = true;
    await Promise.all(probes.map(async ({ check, probe }) => {
      const r = await probe();
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
