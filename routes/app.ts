/**
 * The HTTP application: every route group mounted on one Hono app, with request ids and the error
 * mapping. Built from already-connected parts, so tests call it in-process with `app.request()`.
 * Which groups exist depends on the role: a `gateway` has no lake to query, a `worker` takes no
 * events over HTTP.
 *
 * @module
 */
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import type { LakeJobs } from "../lake/jobs.ts";
import type { LakeQuery } from "../lake/query.ts";
import type { BodyLimits } from "../pipeline/body.ts";
import type { Ingestor } from "../pipeline/ingest.ts";
import type { Logger } from "../pipeline/logger.ts";
import { adminRoutes } from "./admin.ts";
import { errorHandler } from "./errors.ts";
import { eventRoutes } from "./events.ts";
import { healthRoutes, type ReadinessCheck } from "./health.ts";
import { httpMetrics, metricsRoutes, type MetricsRoutesOptions } from "./metrics.ts";
import { queryRoutes } from "./query.ts";
import { scoreRoutes, type ScoreRoutesOptions } from "./score.ts";

/** What the app is built from. */
export interface AppDeps {
  limits: BodyLimits;
  logger: Logger;
  /** Enables `POST /events` (the ingest roles: `gateway`, `all`). */
  ingestor?: Ingestor;
  /** Checks behind `GET /ready`. */
  readiness?: ReadinessCheck[];
  onAccepted?: Parameters<typeof eventRoutes>[0]["onAccepted"];
  /** Enables `POST /score` (absent when fraud scoring is off). */
  score?: Omit<ScoreRoutesOptions, "limits">;
  /** Enables `GET /events`, `/alerts`, `/users/:id`, `/stats` (roles with the lake). */
  query?: LakeQuery;
  /** Enables `/admin/jobs` when a token is set too. */
  admin?: { jobs: LakeJobs; token: string | undefined };
  /** Enables `GET /metrics` and request timing. */
  metrics?: MetricsRoutesOptions;
}

/** Builds the gateway's HTTP app. */
export function createApp(deps: AppDeps): Hono<{ Variables: { requestId: string } }> {
  const app = new Hono<{ Variables: { requestId: string } }>();
  if (deps.metrics) app.use(httpMetrics(deps.metrics.metrics)); // first: times the whole chain
  app.use(requestId({ limitLength: 64 }));
  app.onError(errorHandler(deps.logger));
  app.notFound((c) =>
    c.json(
      { error: { code: "not_found", message: `No route for ${c.req.method} ${c.req.path}` } },
      404,
    )
  );
  const { ingestor, limits, logger, onAccepted } = deps;
  if (ingestor) {
    app.route(
      "/",
      eventRoutes({ ingestor, limits, logger, ...(onAccepted ? { onAccepted } : {}) }),
    );
  }
  if (deps.score) app.route("/", scoreRoutes({ ...deps.score, limits }));
  if (deps.query) app.route("/", queryRoutes({ query: deps.query }));
  if (deps.admin) app.route("/", adminRoutes(deps.admin));
  if (deps.metrics) app.route("/", metricsRoutes(deps.metrics));
  app.route(
    "/",
    healthRoutes({
      checks: deps.readiness ?? [],
      ...(ingestor ? { overloaded: () => ingestor.overloaded() } : {}),
    }),
  );
  return app;
}
