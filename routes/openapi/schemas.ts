/**
 * The component schemas of the OpenAPI document (see `openapi.ts`): the event schemas, as
 * `GET /schemas` answers them (`shared/schemas.ts`), and the response schemas, written as zod
 * schemas that the compiler checks against the TypeScript types the routes answer with (see the
 * `Same` checks at the end): a field added to `EventOut` without being added here fails
 * `deno check`.
 *
 * OpenAPI 3.1 schemas are JSON Schema draft 2020-12, which is what `z.toJSONSchema` emits.
 *
 * @module
 */
import { z } from "zod";
import { type JobReport, JOBS, type JobStats } from "../../lake/jobs.ts";
import { type Domain, SILVER_DOMAINS } from "../../lake/layout.ts";
import type { AlertOut, EventOut, EventsPage, StatsOut, UserOut } from "../../lake/query/query.ts";
import type { Rejection } from "../../pipeline/ingest.ts";
import type { RuleDecision } from "../../pipeline/fraud/rules.ts";
import { type FiredRule, SEVERITIES } from "../../shared/alert.ts";
import { EVENT_TYPES, eventJsonSchema, type EventType } from "../../shared/schemas.ts";
import type { Issue } from "../../pipeline/validate.ts";

/** Where component schemas live; every `$ref` of the document points here. */
export const REF = "#/components/schemas/";
/** Name of one event type's component schema: the schema `GET /schemas/{type}` answers. */
export function eventSchemaName(type: EventType): string {
  return `event.${type}`;
}
/** A reference to the component schema `name`. */
export const ref = (name: string) => ({ $ref: `${REF}${name}` });

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
    rule_score: z.number().meta({ description: "The rules' score, 0..1" }),
    fraud_score: z.number().meta({
      description: "`max(rule_score, llm_score)`, or `rule_score` without an LLM score: " +
        "never below `rule_score`",
    }),
    severity: z.string().meta({
      description: "Highest severity among the rules, raised (never lowered) by an LLM " +
        "`fraud` verdict: to `critical` from 0.9, `high` from 0.7, `medium` from 0.5",
    }),
    rules: z.array(z.string()),
    reasons: z.unknown().meta({ description: "`[{name, severity, reason}]`" }),
    llm_status: z.string(),
    llm_score: z.number().nullable().meta({
      description: "The LLM's score, 0..1; `null` when it gave none",
    }),
    llm_disagrees: z.boolean().meta({
      description: "The rules flag the event and the LLM says `legitimate` or scores at " +
        "least 0.5 below `rule_score`: a model problem or an injection attempt",
    }),
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

/**
 * Every component schema of the document: the `Event` union, one schema per event type, the
 * `JsonSchema` placeholder and the response schemas, in that order.
 */
export function componentSchemas(): Record<string, Record<string, unknown>> {
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
  return {
    Event: eventUnion,
    ...eventSchemas,
    JsonSchema: {
      type: "object",
      description: "A JSON Schema (draft 2020-12) document",
    },
    ...responseSchemas(),
  };
}

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
