/**
 * The read API over the lake: `GET /events`, `GET /alerts`, `GET /users/:id`, `GET /stats`
 * (see `lake/query.ts`). Query parameters are taken once each; a repeated or unknown parameter, or
 * any value that fails validation, answers 400
 * `{"error": {"code": "invalid_query", "message", "issues": [{"path", "message"}]}, "request_id"}`.
 * Engine failures go to the app's error handler (500, nothing leaked).
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { InvalidQueryError, type LakeQuery } from "../lake/query/query.ts";

/** Options of {@link queryRoutes}. */
export interface QueryRoutesOptions {
  query: LakeQuery;
}

type Env = { Variables: { requestId: string } };

/** The query parameters of a request, each given at most once. */
function singleParams(c: Context<Env>): Record<string, string> {
  const all = c.req.queries();
  const out: Record<string, string> = {};
  const issues: { path: string; message: string }[] = [];
  for (const [key, values] of Object.entries(all)) {
    if (values.length !== 1) {
      issues.push({ path: key.slice(0, 64), message: "must be given once" });
    } else out[key] = values[0]!;
  }
  if (issues.length > 0) throw new InvalidQueryError(issues);
  return out;
}

/** The query routes. */
export function queryRoutes({ query }: QueryRoutesOptions): Hono<Env> {
  const app = new Hono<Env>();

  const handle = (fn: (c: Context<Env>) => Promise<unknown>) => async (c: Context<Env>) => {
    try {
      return c.json(await fn(c) as Record<string, unknown>);
    } catch (err) {
      if (!(err instanceof InvalidQueryError)) throw err;
      return c.json({
        error: { code: "invalid_query", message: err.message, issues: err.issues },
        request_id: c.get("requestId"),
      }, 400);
    }
  };

  /** 200 `{events: [...], next_cursor}`: bronze events, oldest first, a page at a time. */
  app.get("/events", handle((c) => query.events(singleParams(c))));
  /** 200 `{alerts: [...]}`: newest first. */
  app.get("/alerts", handle((c) => query.alerts(singleParams(c))));
  /** 200 `{user_id, recent_events, alerts, features}`. */
  app.get(
    "/users/:id",
    handle((c) => {
      const params = singleParams(c);
      if (Object.keys(params).length > 0) {
        throw new InvalidQueryError(
          Object.keys(params).map((k) => ({
            path: k.slice(0, 64),
            message: "unknown query parameter",
          })),
        );
      }
      return query.user(c.req.param("id") ?? "");
    }),
  );
  /** 200 `{from, to, by_type, by_hour, total}`. */
  app.get("/stats", handle((c) => query.stats(singleParams(c))));
  return app;
}
