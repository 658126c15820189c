/**
 * The HTTP application: every route group mounted on one Hono app, with request ids and the error
 * mapping. Built from already-connected parts, so tests call it in-process with `app.request()`.
 * Which groups exist depends on the role: a `gateway` has no lake to query, a `worker` takes no
 * events over HTTP.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { requestId } from "hono/request-id";
import type { LakeJobs } from "../lake/jobs.ts";
import type { LakeQuery } from "../lake/query/query.ts";
import type { BodyLimits } from "./body.ts";
import type { Ingestor } from "../pipeline/ingest.ts";
import type { Logger } from "../shared/logger.ts";
import type { RateLimitGuard } from "./ratelimit/ratelimit.ts";
import { adminRoutes } from "./admin.ts";
import type { ApiKey } from "./auth/api_keys.ts";
import { apiKeyAuth, type AuthEnv, type HmacMode } from "./auth/api_key_auth.ts";
import { rateLimit } from "./ratelimit/middleware.ts";
import { dashboardRoutes } from "./dashboard.ts";
import { docsRoutes } from "./docs.ts";
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
  /** API keys for ingest (and the query routes when `privateQuery`). Absent = open. */
  access?: { keys: ApiKey[]; hmac: HmacMode; toleranceSeconds: number; privateQuery: boolean };
  /** `QUERY_MAX_LIMIT`, for the OpenAPI document. */
  docs?: { maxQueryLimit: number };
  /** Per-key (or per-address) request limits on ingest and query routes. */
  rateLimit?: { guard: RateLimitGuard; trustProxy: boolean };
}

const INGEST_ROUTES = ["/events", "/score"];
const QUERY_ROUTES = ["/events", "/alerts", "/users/:id", "/stats"];

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
  const { ingestor, limits, logger, onAccepted, access } = deps;
  // Guards go before the routes: Hono runs handlers in the order they were registered. Health,
  // readiness, metrics, schemas, docs and the dashboard stay public; admin has its own token, so a
  // leaked ingest key cannot run jobs.
  const limit = deps.rateLimit ? [rateLimit(deps.rateLimit)] : [];
  const authLogger = logger.child({ component: "auth" });
  const ingestGuard: MiddlewareHandler<AuthEnv>[] = access
    ? [
      apiKeyAuth({
        keys: access.keys,
        hmac: access.hmac,
        toleranceSeconds: access.toleranceSeconds,
        maxBodyBytes: limits.maxBytes,
        logger: authLogger,
      }),
      ...limit,
    ]
    : limit;
  const queryGuard: MiddlewareHandler<AuthEnv>[] = access?.privateQuery
    ? [apiKeyAuth({ keys: access.keys, logger: authLogger }), ...limit]
    : limit;
  for (const mw of ingestGuard) app.on("POST", INGEST_ROUTES, mw as MiddlewareHandler);
  for (const mw of queryGuard) app.on("GET", QUERY_ROUTES, mw as MiddlewareHandler);
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
  app.route("/", dashboardRoutes());
  app.route(
    "/",
    docsRoutes({
      ...(deps.docs ?? {}),
      apiKeyGroups: access ? (access.privateQuery ? ["ingest", "query"] : ["ingest"]) : [],
      signedBodies: access?.hmac ?? "off",
    }),
  );
  app.route(
    "/",
    healthRoutes({
      checks: deps.readiness ?? [],
      ...(ingestor ? { overloaded: () => ingestor.overloaded() } : {}),
    }),
  );
  return app;
}
