/**
 * `GET /metrics` in the Prometheus text exposition format, and the middleware that times every
 * HTTP request by its route pattern.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import type { Context } from "hono";
import { matchedRoutes } from "hono/route";
import {
  type LagProbe,
  type Metrics,
  METRICS_CONTENT_TYPE,
  type ThrottleLagOptions,
  throttleLagProbe,
} from "../shared/metrics.ts";

/** The `route` label of a request that matched no route (a 404 from `app.notFound`). */
export const UNMATCHED_ROUTE = "unmatched";

/** Options of {@link metricsRoutes}. */
export interface MetricsRoutesOptions {
  metrics: Metrics;
  /**
   * Reads the consumer lag for `streamgate_consumer_lag` on scrape: `KafkaLag.read` in Kafka mode,
   * `walLagProbe()` in embedded mode. Throttled and bounded by `lag` (see `throttleLagProbe()`).
   */
  lagProbe?: LagProbe;
  /** Throttling of `lagProbe`. @default { intervalMs: 5000, timeoutMs: 2000 } */
  lag?: ThrottleLagOptions;
}

/** `GET /metrics`. */
export function metricsRoutes({ metrics, lagProbe, lag = {} }: MetricsRoutesOptions): Hono {
  const app = new Hono();
  const readLag = lagProbe ? throttleLagProbe(lagProbe, lag) : undefined;
  app.get("/metrics", async (c) => {
    if (readLag) metrics.setLags(await readLag());
    return c.body(await metrics.text(), 200, { "content-type": METRICS_CONTENT_TYPE });
  });
  return app;
}

/**
 * The route pattern that answered a request (`/schemas/:type`), or {@link UNMATCHED_ROUTE} when
 * only catch-all middleware ran. Never the raw path: each label value is a new time series, and
 * clients choose paths.
 */
export function routeLabel(c: Context): string {
  const route = matchedRoutes(c)[c.req.routeIndex];
  // After a 404 from notFound, the last route that ran is middleware registered with `use()` on
  // every path; a handler that answers a 404 itself (unknown schema) keeps its own pattern.
  if (!route || (route.method === "ALL" && /^\/?\*$/.test(route.path))) return UNMATCHED_ROUTE;
  return route.path;
}

/**
 * Observes every request in `streamgate_http_request_duration_seconds` by method, route pattern
 * and status. Register it first, on the root app, so it times the whole chain. The time ends when
 * the handler returns its response, before a streamed body is sent.
 */
export function httpMetrics(metrics: Metrics): MiddlewareHandler {
  return async function httpMetrics(c, next) {
    const started = performance.now();
    let status = 500; // when the chain throws past every error handler
    try {
      await next();
      status = c.res.status;
    } finally {
      metrics.httpRequest(c.req.method, routeLabel(c), status, performance.now() - started);
    }
  };
}
