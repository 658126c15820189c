/**
 * The HTTP application: every route group mounted on one Hono app, with request ids and the error
 * mapping. Built from already-connected parts, so tests call it in-process with `app.request()`.
 *
 * @module
 */
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import type { BodyLimits } from "../pipeline/body.ts";
import type { Ingestor } from "../pipeline/ingest.ts";
import type { Logger } from "../pipeline/logger.ts";
import { errorHandler } from "./errors.ts";
import { eventRoutes } from "./events.ts";
import { healthRoutes, type ReadinessCheck } from "./health.ts";
import { scoreRoutes, type ScoreRoutesOptions } from "./score.ts";

/** What the app is built from. */
export interface AppDeps {
  ingestor: Ingestor;
  limits: BodyLimits;
  logger: Logger;
  /** Checks behind `GET /ready`. */
  readiness?: ReadinessCheck[];
  onAccepted?: Parameters<typeof eventRoutes>[0]["onAccepted"];
  /** Enables `POST /score` (absent when fraud scoring is off). */
  score?: Omit<ScoreRoutesOptions, "limits">;
}

/** Builds the gateway's HTTP app. */
export function createApp(deps: AppDeps): Hono<{ Variables: { requestId: string } }> {
  const app = new Hono<{ Variables: { requestId: string } }>();
  app.use(requestId({ limitLength: 64 }));
  app.onError(errorHandler(deps.logger));
  app.notFound((c) =>
    c.json(
      { error: { code: "not_found", message: `No route for ${c.req.method} ${c.req.path}` } },
      404,
    )
  );
  const { ingestor, limits, logger, onAccepted } = deps;
  const events = eventRoutes({ ingestor, limits, logger, ...(onAccepted ? { onAccepted } : {}) });
  app.route("/", events);
  if (deps.score) app.route("/", scoreRoutes({ ...deps.score, limits }));
  app.route("/", healthRoutes({ ingestor: deps.ingestor, checks: deps.readiness ?? [] }));
  return app;
}
