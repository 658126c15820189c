/**
 * The query side of the OpenAPI document (see `openapi.ts`): `GET /events`, `/alerts`,
 * `/users/{id}` and `/stats`. Their parameters come from the zod schemas the query API validates
 * with (`lake/query/query.ts`), so they cannot drift from what is checked.
 *
 * @module
 */
import { z } from "zod";
import { querySchemas } from "../../lake/query/query.ts";
import {
  errorResponse,
  internal,
  json,
  type PathItems,
  rateLimited,
  retryAfter,
  ROLES_WORKER,
} from "./responses.ts";
import { ref } from "./schemas.ts";

/** What every query operation is described with. */
interface QueryDocs {
  /** The query API's zod schemas. */
  q: ReturnType<typeof querySchemas>;
  /** Descriptions of `from`, `to` and `limit`, for a default range of `days`. */
  range: (days: number) => Record<"from" | "to" | "limit", string>;
  /** The error responses of every query operation. */
  queryErrors: Record<string, unknown>;
}

/**
 * `GET /events`, `/alerts`, `/users/{id}` and `/stats`, in that order. `maxQueryLimit` is the
 * gateway's `QUERY_MAX_LIMIT`.
 */
export function queryPaths(maxQueryLimit: number): PathItems {
  const q = querySchemas(maxQueryLimit);
  const range = (days: number) => ({
    from: `Start of the \`occurred_at\` range, inclusive (ISO-8601 with a time zone). ` +
      `Default: ${days === 1 ? "24 hours" : `${days} days`} before \`to\``,
    to: "End of the `occurred_at` range, exclusive. Default: now. The range may span at most " +
      "`QUERY_MAX_RANGE_DAYS` days",
    limit: `Rows per page, 1 to ${maxQueryLimit}. Default: ${Math.min(100, maxQueryLimit)}`,
  });
  const queryErrors = {
    "400": {
      description: "A parameter is invalid, unknown or repeated",
      content: json(ref("QueryError")),
    },
    "429": rateLimited,
    "503": errorResponse("Too many lake queries in flight; retry later", retryAfter),
    "500": internal,
  };
  const docs: QueryDocs = { q, range, queryErrors };
  return {
    "/events": { get: listEvents(docs) },
    "/alerts": { get: listAlerts(docs) },
    "/users/{id}": { get: getUser(docs) },
    "/stats": { get: getStats(docs) },
  };
}

/** `GET /events`. */
function listEvents({ q, range, queryErrors }: QueryDocs): Record<string, unknown> {
  return {
    tags: ["query"],
    operationId: "listEvents",
    summary: "Events from the lake",
    description: "Bronze events with `occurred_at` in `[from, to)`, oldest first, a page at a " +
      `time (follow \`next_cursor\`). ${ROLES_WORKER}`,
    parameters: queryParameters(q.events, {
      user_id: "Only this user's events",
      type: "Only events of this type (a known type, or `other`)",
      ...range(1),
      cursor: "`next_cursor` of the previous page",
    }),
    responses: {
      "200": { description: "One page of events", content: json(ref("EventsPage")) },
      ...queryErrors,
    },
  };
}

/** `GET /alerts`. */
function listAlerts({ q, range, queryErrors }: QueryDocs): Record<string, unknown> {
  return {
    tags: ["query"],
    operationId: "listAlerts",
    summary: "Fraud alerts",
    description: `Alerts with \`occurred_at\` in \`[from, to)\`, newest first. ${ROLES_WORKER}`,
    parameters: queryParameters(q.alerts, {
      user_id: "Only this user's alerts",
      severity: "Only alerts of at least this severity",
      rule: "Only alerts where this rule fired",
      ...range(7),
    }),
    responses: {
      "200": { description: "The alerts", content: json(ref("AlertsPage")) },
      ...queryErrors,
    },
  };
}

/** `GET /users/{id}`: takes no query parameters. */
function getUser({ q, queryErrors }: QueryDocs): Record<string, unknown> {
  return {
    tags: ["query"],
    operationId: "getUser",
    summary: "One user's recent activity",
    description: "The user's last 50 events of the last 7 days, last 20 alerts and gold " +
      `features of the last 30 days. Takes no query parameters. ${ROLES_WORKER}`,
    parameters: [{
      name: "id",
      in: "path",
      required: true,
      schema: z.toJSONSchema(q.userId, { io: "input", unrepresentable: "any" }),
    }],
    responses: {
      "200": { description: "The user's view", content: json(ref("UserView")) },
      ...queryErrors,
    },
  };
}

/** `GET /stats`. */
function getStats({ q, range, queryErrors }: QueryDocs): Record<string, unknown> {
  return {
    tags: ["query"],
    operationId: "getStats",
    summary: "Event counts by type and by hour",
    description: `Bronze event counts with \`occurred_at\` in \`[from, to)\`. ${ROLES_WORKER}`,
    parameters: queryParameters(q.stats, range(1)),
    responses: {
      "200": { description: "The counts", content: json(ref("Stats")) },
      ...queryErrors,
    },
  };
}

/** Query parameters from a zod object schema; descriptions by name. */
function queryParameters(
  schema: z.ZodType,
  descriptions: Record<string, string>,
): Record<string, unknown>[] {
  const js = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as {
    properties?: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  return Object.entries(js.properties ?? {}).map(([name, s]) => ({
    name,
    in: "query",
    required: js.required?.includes(name) ?? false,
    ...(descriptions[name] ? { description: descriptions[name] } : {}),
    schema: s,
  }));
}
