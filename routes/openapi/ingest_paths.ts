/**
 * The ingest side of the OpenAPI document (see `openapi.ts`): `POST /events`, the event schemas
 * (`GET /schemas`, `GET /schemas/{type}`) and `POST /score`.
 *
 * @module
 */
import { EVENT_TYPES } from "../../shared/schemas.ts";
import {
  bodyErrors,
  internal,
  json,
  notFound,
  overloaded,
  type PathItems,
  rateLimited,
  ROLES_INGEST,
} from "./responses.ts";
import { ref } from "./schemas.ts";

/** Media types `POST /events` reads as NDJSON (`routes/body.ts`). */
const NDJSON_TYPES = [
  "application/x-ndjson",
  "application/ndjson",
  "application/jsonl",
  "application/x-jsonlines",
];

type ExampleEvent = ReturnType<typeof exampleEvent>;

/** The event the request examples show; one object per document, as every example shows it. */
function exampleEvent() {
  return {
    type: "login",
    user_id: "u-1",
    occurred_at: "2026-03-10T12:00:00Z",
    payload: { ip: "203.0.113.7", country: "DE" },
  };
}

/** `POST /events`, `GET /schemas`, `GET /schemas/{type}` and `POST /score`, in that order. */
export function ingestPaths(): PathItems {
  const example = exampleEvent();
  return {
    "/events": { post: postEvents(example) },
    "/schemas": { get: getSchemas() },
    "/schemas/{type}": { get: getSchema() },
    "/score": { post: scoreEvent(example) },
  };
}

/** `POST /events`: JSON, a JSON array or NDJSON, optionally gzip-compressed. */
function postEvents(example: ExampleEvent): Record<string, unknown> {
  return {
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
  };
}

/** `GET /schemas`. */
function getSchemas(): Record<string, unknown> {
  return {
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
  };
}

/** `GET /schemas/{type}`. */
function getSchema(): Record<string, unknown> {
  return {
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
  };
}

/** `POST /score`. */
function scoreEvent(example: ExampleEvent): Record<string, unknown> {
  return {
    tags: ["scoring"],
    operationId: "scoreEvent",
    summary: "Score one event now",
    description: "The fraud rules' decision for one event, for a caller that must decide " +
      "whether to let a login or a payment through. The rules alone decide: the LLM is never " +
      "asked here, so no model answer can turn `review` or `block` into `allow`. " +
      "The event is recorded in the fraud " +
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
  };
}
