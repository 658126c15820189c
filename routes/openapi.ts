/**
 * The OpenAPI 3.1 document of the whole HTTP API, served at `GET /openapi.json` (see `docs.ts`).
 *
 * Nothing in it is written twice. The event schemas are the ones `GET /schemas` answers
 * (`pipeline/schemas.ts`), the query parameters come from the zod schemas the query API validates
 * with (`lake/query.ts`), and the response schemas below are zod schemas that the compiler checks
 * against the TypeScript types the routes answer with (see the `Same` checks at the end): a field
 * added to `EventOut` without being added here fails `deno check`.
 *
 * OpenAPI 3.1 schemas are JSON Schema draft 2020-12, which is what `z.toJSONSchema` emits.
 *
 * @module
 */
import { z } from "zod";
import { type JobReport, JOBS, type JobStats } from "../lake/jobs.ts";
import { type Domain, SILVER_DOMAINS } from "../lake/layout.ts";
import {
  type AlertOut,
  type EventOut,
  type EventsPage,
  querySchemas,
  type StatsOut,
  type UserOut,
} from "../lake/query/query.ts";
import type { Rejection } from "../pipeline/ingest.ts";
import type { RuleDecision } from "../pipeline/fraud/rules.ts";
import { type FiredRule, SEVERITIES } from "../shared/alert.ts";
import { EVENT_TYPES, eventJsonSchema, type EventType } from "../shared/schemas.ts";
import type { Issue } from "../pipeline/validate.ts";

/** An OpenAPI document as plain JSON. */
export type OpenApiDocument = Record<string, unknown> & {
  openapi: string;
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, Record<string, unknown>> } & Record<string, unknown>;
};

/** Options of {@link openApiDocument}. */
export interface OpenApiOptions {
  /** `info.title`. @default "streamgate" */
  title?: string;
  /** `info.version`: the version of the API description. @default "1.0.0" */
  version?: string;
  /** `servers`. @default [{ url: "/" }]: the origin the document is served from */
  servers?: { url: string; description?: string }[];
  /** The gateway's `QUERY_MAX_LIMIT`: largest `limit` of `GET /events` and `GET /alerts`. @default 1000 */
  maxQueryLimit?: number;
  /**
   * Route groups that need an API key (`routes/auth/`): `ingest` (POST /events, POST /score)
   * when `API_KEYS` is set, `query` too with `QUERY_AUTH=private`. @default []
   */
  apiKeyGroups?: ("ingest" | "query")[];
  /** `API_HMAC`: whether ingest bodies carry an `X-Signature`. @default "off" */
  signedBodies?: "off" | "optional" | "required";
}

/** Where component schemas live; every `$ref` of the document points here. */
const REF = "#/components/schemas/";
/** Name of one event type's component schema: the schema `GET /schemas/{type}` answers. */
export function eventSchemaName(type: EventType): string {
  return `event.${type}`;
}
const ref = (name: string) => ({ $ref: `${REF}${name}` });

/** Media types `POST /events` reads as NDJSON (`pipeline/body.ts`). */
const NDJSON_TYPES = [
  "application/x-ndjson",
  "application/ndjson",
  "application/jsonl",
  "application/x-jsonlines",
];

// ---------------------------------------------------------------------------------------------
// Response schemas: zod, so they become JSON Schema the same way the event schemas do, and so the
// compiler can hold them to the TypeScript types of what the routes answer.

const components = z.registry<{ id: string }>();
function component<T extends z.ZodType>(id: string, schema: T): T {
  components.add(schema, { id });
  return schema;
}

const IssueSchema = component(
  "Issue",
  z.object({
    path: z.string().meta({ description: "Dotted path into the event, e.g. `payload.amount`" }),
    message: z.string(),
    code: z.string().meta({ description: "zod issue code, or `unknown_type`, `invalid_json`…" }),
  }),
);
const RejectionSchema = component(
  "Rejection",
  z.object({
    index: z.number().int().meta({ description: "Position of the event in the request" }),
    event_id: z.string().exactOptional(),
    issues: z.array(IssueSchema),
  }).meta({ description: "An event that was not accepted; it went to the dead letters" }),
);
component(
  "IngestResult",
  z.object({
    accepted: z.number().int().meta({ description: "Events now durable in the log" }),
    rejected: z.array(RejectionSchema),
    event_ids: z.array(z.string()).meta({ description: "Ids of the accepted events, in order" }),
  }),
);
component(
  "Error",
  z.object({
    error: z.object({
      code: z.string().meta({
        description: "`invalid_body`, `limit_bytes`, `limit_events`, `limit_depth`, " +
          "`unsupported_content`, `overloaded`, `not_found`, `internal`…",
      }),
      message: z.string(),
      reason: z.string().exactOptional().meta({
        description: "Why a 401 was answered: `missing_credentials`, `invalid_credentials`, " +
          "`missing_signature`, `invalid_signature`…",
      }),
      where: z.object({ line: z.number().int(), column: z.number().int() }).exactOptional()
        .meta({ description: "Where in the body a JSON error is (1-based)" }),
    }),
    request_id: z.string().exactOptional(),
  }),
);
component(
  "QueryError",
  z.object({
    error: z.object({
      code: z.literal("invalid_query"),
      message: z.string(),
      issues: z.array(z.object({ path: z.string(), message: z.string() })),
    }),
    request_id: z.string(),
  }),
);
component(
  "InvalidEvent",
  z.object({
    error: z.object({
      code: z.literal("invalid_event"),
      message: z.string(),
      issues: z.array(IssueSchema),
    }),
    request_id: z.string(),
  }),
);
const FiredRuleSchema = component(
  "FiredRule",
  z.object({ name: z.string(), severity: z.enum(SEVERITIES), reason: z.string() }),
);
const ScoreResultSchema = component(
  "ScoreResult",
  z.object({
    event_id: z.string(),
    user_id: z.string(),
    score: z.number().min(0).max(1),
    decision: z.enum(["allow", "review", "block"]),
    rules: z.array(FiredRuleSchema),
    degraded: z.string().exactOptional().meta({
      description: "Set when the window store could not be read: the rules ran on this event alone",
    }),
  }),
);
const DependencyStateSchema = z.enum(["ok", "degraded", "down"]);
component("Health", z.object({ status: z.literal("ok") }));
component(
  "Ready",
  z.object({
    status: z.enum(["ready", "unavailable"]),
    dependencies: z.record(
      z.string(),
      z.object({ state: DependencyStateSchema, detail: z.string().exactOptional() }),
    ),
  }),
);
const EventOutSchema = component(
  "EventOut",
  z.object({
    event_id: z.string(),
    type: z.string().meta({ description: "The partition: a known type or `other`" }),
    event_type: z.string().meta({ description: "The type as sent" }),
    user_id: z.string(),
    occurred_at: z.string().meta({ format: "date-time" }),
    received_at: z.string().meta({ format: "date-time" }),
    source: z.string(),
    payload: z.unknown(),
    log_topic: z.string(),
    log_partition: z.number().int(),
    log_offset: z.number().int(),
  }).meta({ description: "An event as stored in bronze" }),
);
const AlertOutSchema = component(
  "AlertOut",
  z.object({
    alert_id: z.string(),
    user_id: z.string(),
    raised_at: z.string().meta({ format: "date-time" }),
    occurred_at: z.string().meta({ format: "date-time" }),
    trigger_event_id: z.string(),
    trigger_type: z.string(),
    rule_score: z.number(),
    fraud_score: z.number(),
    severity: z.string().meta({ description: "Highest severity among the rules" }),
    rules: z.array(z.string()),
    reasons: z.unknown().meta({ description: "`[{name, severity, reason}]`" }),
    llm_status: z.string(),
    llm_score: z.number().nullable(),
    llm_verdict: z.string().nullable(),
    llm_rationale: z.string().nullable(),
    window_summary: z.unknown(),
    event_ids: z.unknown(),
    degraded: z.string().nullable(),
  }),
);
const EventsPageSchema = component(
  "EventsPage",
  z.object({
    events: z.array(EventOutSchema),
    next_cursor: z.string().nullable().meta({
      description: "Pass as `cursor` for the next page; `null` on the last page",
    }),
  }),
);
const AlertsPageSchema = component("AlertsPage", z.object({ alerts: z.array(AlertOutSchema) }));
const UserViewSchema = component(
  "UserView",
  z.object({
    user_id: z.string(),
    recent_events: z.array(EventOutSchema),
    alerts: z.array(AlertOutSchema),
    features: z.array(z.record(z.string(), z.unknown())).meta({
      description: "Gold `user_daily_features` rows of the last 30 days, newest first",
    }),
  }),
);
const StatsSchema = component(
  "Stats",
  z.object({
    from: z.string().meta({ format: "date-time" }),
    to: z.string().meta({ format: "date-time" }),
    by_type: z.record(z.string(), z.number().int()),
    by_hour: z.array(
      z.object({ hour: z.string().meta({ format: "date-time" }), count: z.number().int() }),
    ),
    total: z.number().int(),
  }),
);
/** One count per silver domain: an object with every domain as a property (not a record). */
const domainCounts = z.object(
  Object.fromEntries(SILVER_DOMAINS.map((d) => [d, z.number().int()])) as Record<
    Domain,
    z.ZodNumber
  >,
);
const JobReportSchema = component(
  "JobReport",
  z.object({
    job: z.enum(JOBS),
    status: z.enum(["ok", "skipped", "failed"]),
    reason: z.string().exactOptional(),
    error: z.string().exactOptional(),
    started_at: z.string().meta({ format: "date-time" }),
    duration_ms: z.number(),
    rows: z.number().int(),
    files: z.number().int(),
    partitions: z.number().int(),
    silver: z.object({
      files_read: z.number().int(),
      batches_read: z.number().int(),
      rows_in: z.number().int(),
      rows_new: domainCounts,
      rows_written: domainCounts,
      rejects_new: z.number().int(),
      duplicates: z.number().int(),
      partitions_rewritten: z.number().int(),
      dates: z.array(z.string()),
      more: z.boolean().meta({ description: "Bronze left for the next run (budget reached)" }),
      duration_ms: z.number(),
    }).exactOptional(),
    gold: z.object({
      dates: z.array(z.string()),
      cascaded: z.array(z.string()),
      partitions_rewritten: z.number().int(),
      rows: z.object({
        user_daily_features: z.number().int(),
        daily_type_metrics: z.number().int(),
      }),
      duration_ms: z.number(),
    }).exactOptional(),
  }),
);
const JobStatsSchema = z.object({
  runs: z.number().int(),
  failures: z.number().int(),
  skipped: z.number().int(),
  last: z.object({
    at: z.string().meta({ format: "date-time" }),
    status: z.enum(["ok", "skipped", "failed"]),
    duration_ms: z.number(),
    rows: z.number().int(),
    files: z.number().int(),
    partitions: z.number().int(),
  }).exactOptional(),
});
component(
  "JobsState",
  z.object({
    jobs: z.array(z.enum(JOBS)),
    running: z.enum(JOBS).nullable(),
    stats: z.object(
      Object.fromEntries(JOBS.map((j) => [j, JobStatsSchema])) as Record<
        (typeof JOBS)[number],
        typeof JobStatsSchema
      >,
    ),
  }),
);
component(
  "JobError",
  z.object({
    error: z.object({
      code: z.enum(["unauthorized", "not_found", "unknown_job", "job_running", "job_failed"]),
      message: z.string(),
      allowed: z.array(z.enum(JOBS)).exactOptional(),
    }),
    report: JobReportSchema.exactOptional(),
    request_id: z.string(),
  }),
);

/** The response schemas as JSON Schema, `$ref`s between them pointing into the document. */
function responseSchemas(): Record<string, Record<string, unknown>> {
  const { schemas } = z.toJSONSchema(components, {
    uri: (id) => `${REF}${id}`,
    io: "output",
    unrepresentable: "any",
  }) as { schemas: Record<string, Record<string, unknown>> };
  // Each comes out as a standalone document; inside components, `$schema` is implied and a
  // fragment-only `$id` is not allowed.
  for (const schema of Object.values(schemas)) {
    delete schema.$schema;
    delete schema.$id;
  }
  return schemas;
}

// ---------------------------------------------------------------------------------------------
// Building blocks of operations.

const json = (schema: unknown, extra: Record<string, unknown> = {}) => ({
  "application/json": { schema, ...extra },
});
const retryAfter = {
  "Retry-After": {
    description: "Seconds to wait before retrying",
    schema: { type: "integer", minimum: 1 },
  },
};
function errorResponse(description: string, headers?: Record<string, unknown>) {
  return { description, ...(headers ? { headers } : {}), content: json(ref("Error")) };
}
const overloaded = errorResponse(
  "The gateway cannot take more work now (queues full, lake behind, log slow); retry later",
  retryAfter,
);
const internal = errorResponse("Internal error; details are logged, not answered");
const notFound = (what: string) => errorResponse(what);
const bodyErrors = {
  "400": errorResponse(
    "The body does not parse: bad JSON (`error.where` has the line and column), empty body or " +
      "invalid UTF-8 (`invalid_body`)",
  ),
  "413": errorResponse(
    "A limit was crossed: body bytes (compressed or not, `limit_bytes`), events per request " +
      "(`limit_events`) or JSON nesting depth (`limit_depth`)",
  ),
  "415": errorResponse(
    "A Content-Type or Content-Encoding the gateway does not read (`unsupported_content`)",
  ),
};

const rateLimited = errorResponse(
  "Over the rate limit of this API key (or client address): `RATE_LIMIT_PER_KEY` requests per " +
    "`RATE_LIMIT_WINDOW_S` (`rate_limited`); retry after `Retry-After` seconds",
  {
    ...retryAfter,
    "RateLimit-Limit": { description: "Requests per window", schema: { type: "integer" } },
    "RateLimit-Remaining": { description: "Requests left in it", schema: { type: "integer" } },
    "RateLimit-Reset": { description: "Seconds until it ends", schema: { type: "integer" } },
  },
);
const unauthorized = errorResponse(
  "No API key, an unknown one, or a bad body signature (`unauthorized`, see `error.reason`)",
  { "WWW-Authenticate": { schema: { type: "string" } } },
);
/** The API key schemes of `routes/auth/api_key_auth.ts`: either one. */
const API_KEY_SECURITY = [{ apiKey: [] }, { apiKeyHeader: [] }];

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

const ROLES_INGEST = "Served by the `gateway` and `all` roles.";
const ROLES_WORKER = "Served by the `worker` and `all` roles.";

/**
 * Builds the OpenAPI 3.1 document of the API. Cheap enough to call once at start-up; the result is
 * plain JSON.
 */
export function openApiDocument(options: OpenApiOptions = {}): OpenApiDocument {
  const {
    title = "streamgate",
    version = "1.0.0",
    servers = [{ url: "/", description: "The gateway that serves this document" }],
    maxQueryLimit = 1000,
    apiKeyGroups = [],
    signedBodies = "off",
  } = options;
  const q = querySchemas(maxQueryLimit);
  const range = (days: number) => ({
    from: `Start of the \`occurred_at\` range, inclusive (ISO-8601 with a time zone). ` +
      `Default: ${days === 1 ? "24 hours" : `${days} days`} before \`to\``,
    to: "End of the `occurred_at` range, exclusive. Default: now. The range may span at most " +
      "`QUERY_MAX_RANGE_DAYS` days",
    limit: `Rows per page, 1 to ${maxQueryLimit}. Default: ${Math.min(100, maxQueryLimit)}`,
  });

  const eventSchemas = Object.fromEntries(
    EVENT_TYPES.map((t) => [eventSchemaName(t), eventJsonSchema(t)]),
  );
  const eventUnion = {
    description: "One event; `type` selects the payload schema",
    oneOf: EVENT_TYPES.map((t) => ref(eventSchemaName(t))),
    discriminator: {
      propertyName: "type",
      mapping: Object.fromEntries(EVENT_TYPES.map((t) => [t, `${REF}${eventSchemaName(t)}`])),
    },
  };
  const example = {
    type: "login",
    user_id: "u-1",
    occurred_at: "2026-03-10T12:00:00Z",
    payload: { ip: "203.0.113.7", country: "DE" },
  };

  const queryErrors = {
    "400": {
      description: "A parameter is invalid, unknown or repeated",
      content: json(ref("QueryError")),
    },
    "429": rateLimited,
    "503": errorResponse("Too many lake queries in flight; retry later", retryAfter),
    "500": internal,
  };
  const paths: OpenApiDocument["paths"] = {
    "/events": {
      post: {
        tags: ["ingest"],
        operationId: "postEvents",
        summary: "Send events",
        description: "Validates each event against its type's schema, makes the valid ones " +
          "durable in the log (Kafka or the embedded WAL) and answers once they are. Invalid " +
          "events go to the dead letters with their issues. The body is one JSON event, a JSON " +
          "array of events, or NDJSON (one event per line), optionally gzip-compressed " +
          `(\`Content-Encoding: gzip\`). ${ROLES_INGEST}`,
        parameters: [{
          name: "Content-Encoding",
          in: "header",
          required: false,
          description: "`gzip` to send a compressed body",
          schema: { type: "string", enum: ["gzip", "x-gzip", "identity"] },
        }],
        requestBody: {
          required: true,
          content: {
            ...json(
              { oneOf: [ref("Event"), { type: "array", items: ref("Event") }] },
              {
                examples: {
                  one: { summary: "One event", value: example },
                  array: { summary: "An array of events", value: [example, example] },
                },
              },
            ),
            ...Object.fromEntries(NDJSON_TYPES.map((t) => [t, {
              schema: {
                type: "string",
                description: "One JSON event per line; each line is validated on its own",
              },
              "x-item-schema": ref("Event"),
              example: `${JSON.stringify(example)}\n${JSON.stringify(example)}\n`,
            }])),
          },
        },
        responses: {
          "202": {
            description: "At least one event was accepted, and every accepted event is durable. " +
              "`rejected` lists the others",
            content: json(ref("IngestResult")),
          },
          ...bodyErrors,
          "422": {
            description: "No event was accepted; the rejected ones are stored as dead letters",
            content: json(ref("IngestResult")),
          },
          "429": rateLimited,
          "503": overloaded,
          "500": internal,
        },
      },
    },
    "/schemas": {
      get: {
        tags: ["schemas"],
        operationId: "getSchemas",
        summary: "JSON Schemas of every event type",
        description: "The same schemas validation uses, as JSON Schema draft 2020-12, by type. " +
          "They are also this document's `event.<type>` component schemas.",
        responses: {
          "200": {
            description: "Schemas by event type",
            content: json({
              type: "object",
              properties: Object.fromEntries(EVENT_TYPES.map((t) => [t, ref("JsonSchema")])),
              required: [...EVENT_TYPES],
              additionalProperties: false,
            }),
          },
        },
      },
    },
    "/schemas/{type}": {
      get: {
        tags: ["schemas"],
        operationId: "getSchema",
        summary: "JSON Schema of one event type",
        parameters: [{
          name: "type",
          in: "path",
          required: true,
          schema: { type: "string", enum: [...EVENT_TYPES] },
        }],
        responses: {
          "200": { description: "The type's JSON Schema", content: json(ref("JsonSchema")) },
          "404": notFound("No such event type"),
        },
      },
    },
    "/score": {
      post: {
        tags: ["scoring"],
        operationId: "scoreEvent",
        summary: "Score one event now",
        description: "The fraud rules' decision for one event, for a caller that must decide " +
          "whether to let a login or a payment through. The event is recorded in the fraud " +
          "windows under its `event_id` (ingesting it later with the same id does not count it " +
          "twice); nothing is written to the lake and no alert is raised. Exists when fraud " +
          "scoring is on (a `gateway` needs shared windows: `UPSTASH_REDIS_REST_URL`).",
        requestBody: { required: true, content: json(ref("Event"), { example }) },
        responses: {
          "200": { description: "The decision", content: json(ref("ScoreResult")) },
          ...bodyErrors,
          "404": notFound("Fraud scoring is off"),
          "422": { description: "The event is not valid", content: json(ref("InvalidEvent")) },
          "429": rateLimited,
          "500": internal,
        },
      },
    },
  };

  paths["/events"]!.get = {
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
  paths["/alerts"] = {
    get: {
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
    },
  };
  paths["/users/{id}"] = {
    get: {
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
    },
  };
  paths["/stats"] = {
    get: {
      tags: ["query"],
      operationId: "getStats",
      summary: "Event counts by type and by hour",
      description: `Bronze event counts with \`occurred_at\` in \`[from, to)\`. ${ROLES_WORKER}`,
      parameters: queryParameters(q.stats, range(1)),
      responses: {
        "200": { description: "The counts", content: json(ref("Stats")) },
        ...queryErrors,
      },
    },
  };
  paths["/health"] = {
    get: {
      tags: ["operations"],
      operationId: "getHealth",
      summary: "Liveness",
      description: "200 while the process runs; checks nothing else.",
      responses: { "200": { description: "Alive", content: json(ref("Health")) } },
    },
  };
  paths["/ready"] = {
    get: {
      tags: ["operations"],
      operationId: "getReady",
      summary: "Readiness",
      description: "Probes the dependencies (log, lake disk, window store, Ollama) and, on the " +
        "ingest roles, whether events are refused for overload. 503 when a critical one is down.",
      responses: {
        "200": { description: "Ready", content: json(ref("Ready")) },
        "503": { description: "Not ready", content: json(ref("Ready")) },
      },
    },
  };
  paths["/metrics"] = {
    get: {
      tags: ["operations"],
      operationId: "getMetrics",
      summary: "Prometheus metrics",
      responses: {
        "200": {
          description: "Metrics in the Prometheus text exposition format",
          content: { "text/plain": { schema: { type: "string" } } },
        },
      },
    },
  };
  const adminErrors = {
    "401": {
      description: "Missing or wrong bearer token",
      headers: {
        "WWW-Authenticate": { schema: { type: "string" }, description: 'Bearer realm="admin"' },
      },
      content: json(ref("JobError")),
    },
    "404": {
      description: "Admin routes are off (no `ADMIN_TOKEN` configured)",
      content: json(ref("JobError")),
    },
  };
  paths["/admin/jobs"] = {
    get: {
      tags: ["admin"],
      operationId: "getJobs",
      summary: "Lake job counters",
      description: ROLES_WORKER,
      security: [{ adminToken: [] }],
      responses: {
        "200": { description: "The jobs and their counters", content: json(ref("JobsState")) },
        ...adminErrors,
      },
    },
  };
  paths["/admin/jobs/{name}"] = {
    post: {
      tags: ["admin"],
      operationId: "runJob",
      summary: "Run a lake job now",
      description: "Runs `silver`, `gold` or `all` (silver then gold) and answers its report. " +
        `One job at a time per lake, across processes. ${ROLES_WORKER}`,
      security: [{ adminToken: [] }],
      parameters: [{
        name: "name",
        in: "path",
        required: true,
        schema: { type: "string", enum: [...JOBS] },
      }],
      responses: {
        "200": { description: "The job ran", content: json(ref("JobReport")) },
        "400": { description: "Unknown job name", content: json(ref("JobError")) },
        ...adminErrors,
        "409": {
          description: "A job is already running, here or in another process",
          content: json(ref("JobError")),
        },
        "500": {
          description: "The job failed; `report` has the details",
          content: json(ref("JobError")),
        },
      },
    },
  };

  const groups: Record<"ingest" | "query", [string, string][]> = {
    ingest: [["/events", "post"], ["/score", "post"]],
    query: [["/events", "get"], ["/alerts", "get"], ["/users/{id}", "get"], ["/stats", "get"]],
  };
  for (const group of apiKeyGroups) {
    for (const [path, method] of groups[group]) {
      const op = paths[path]![method] as {
        security?: unknown;
        parameters?: unknown[];
        responses: Record<string, unknown>;
      };
      op.security = API_KEY_SECURITY;
      op.responses = { ...op.responses, "401": unauthorized };
      if (group === "ingest" && signedBodies !== "off") {
        op.parameters = [...(op.parameters ?? []), {
          name: "X-Signature",
          in: "header",
          required: signedBodies === "required",
          description: "`t=<unix seconds>,v1=<hex HMAC-SHA256 with the key's secret over " +
            "`<t>.<body bytes as sent>`>`",
          schema: { type: "string", pattern: "^t=\\d+(,v1=[0-9a-f]{64})+$" },
        }];
      }
    }
  }

  return {
    openapi: "3.1.1",
    jsonSchemaDialect: "https://spec.openapis.org/oas/3.1/dialect/base",
    info: {
      title,
      version,
      description: "HTTP event gateway: events in over HTTP, a durable log (Kafka or an " +
        "embedded WAL), a Parquet lake, fraud scoring and a read API over the lake. Every " +
        'error body is `{"error": {"code", "message"}, "request_id"}`; every response ' +
        "carries `X-Request-Id`.",
    },
    servers,
    // Public unless an operation says otherwise (the admin routes do).
    security: [],
    tags: [
      { name: "ingest", description: "Events in" },
      { name: "schemas", description: "The event schemas" },
      { name: "scoring", description: "Synchronous fraud decisions" },
      { name: "query", description: "Reads over the lake" },
      { name: "operations", description: "Health, readiness and metrics" },
      { name: "admin", description: "Lake jobs; bearer token required" },
    ],
    paths,
    components: {
      schemas: {
        Event: eventUnion,
        ...eventSchemas,
        JsonSchema: {
          type: "object",
          description: "A JSON Schema (draft 2020-12) document",
        },
        ...responseSchemas(),
      },
      securitySchemes: {
        apiKey: {
          type: "http",
          scheme: "bearer",
          description: "One of the gateway's `API_KEYS` secrets",
        },
        apiKeyHeader: {
          type: "apiKey",
          in: "header",
          name: "X-API-Key",
          description: "One of the gateway's `API_KEYS` secrets",
        },
        adminToken: {
          type: "http",
          scheme: "bearer",
          description: "The gateway's `ADMIN_TOKEN`",
        },
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The response schemas must describe what the routes answer. Each line fails to type-check when
// the schema and the type drift apart.

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
type _ResponseSchemasMatchTheirTypes = [
  Assert<Same<z.output<typeof IssueSchema>, Issue>>,
  Assert<Same<z.output<typeof RejectionSchema>, Rejection>>,
  Assert<Same<z.output<typeof FiredRuleSchema>, FiredRule>>,
  Assert<
    Same<
      Omit<z.output<typeof ScoreResultSchema>, "event_id" | "user_id" | "degraded">,
      RuleDecision
    >
  >,
  Assert<Same<z.output<typeof EventOutSchema>, EventOut>>,
  Assert<Same<z.output<typeof AlertOutSchema>, AlertOut>>,
  Assert<Same<z.output<typeof EventsPageSchema>, EventsPage>>,
  Assert<Same<z.output<typeof AlertsPageSchema>, { alerts: AlertOut[] }>>,
  Assert<Same<z.output<typeof UserViewSchema>, UserOut>>,
  Assert<Same<z.output<typeof StatsSchema>, StatsOut>>,
  Assert<Same<z.output<typeof JobReportSchema>, JobReport>>,
  Assert<Same<z.output<typeof JobStatsSchema>, JobStats>>,
];
