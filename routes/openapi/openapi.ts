/**
 * The OpenAPI 3.1 document of the whole HTTP API, served at `GET /openapi.json` (see
 * `routes/docs.ts`). This file assembles it; each part has its own file:
 *
 * - `schemas.ts`: the component schemas (event schemas, zod response schemas checked against the
 *   routes' TypeScript types);
 * - `responses.ts`: the error responses and other building blocks operations share;
 * - `ingest_paths.ts`: `POST /events`, `GET /schemas`, `GET /schemas/{type}`, `POST /score`;
 * - `query_paths.ts`: `GET /events`, `/alerts`, `/users/{id}`, `/stats`;
 * - `operations_paths.ts`: `/health`, `/ready`, `/metrics`, `/admin/jobs`.
 *
 * Nothing in it is written twice. The event schemas are the ones `GET /schemas` answers
 * (`shared/schemas.ts`), the query parameters come from the zod schemas the query API validates
 * with (`lake/query/query.ts`), and the response schemas fail `deno check` when they drift from
 * the types the routes answer with.
 *
 * @module
 */
import { ingestPaths } from "./ingest_paths.ts";
import { adminPaths, healthPaths } from "./operations_paths.ts";
import { queryPaths } from "./query_paths.ts";
import { errorResponse, type PathItems } from "./responses.ts";
import { componentSchemas } from "./schemas.ts";

export { eventSchemaName } from "./schemas.ts";

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

const unauthorized = errorResponse(
  "No API key, an unknown one, or a bad body signature (`unauthorized`, see `error.reason`)",
  { "WWW-Authenticate": { schema: { type: "string" } } },
);
/** The API key schemes of `routes/auth/api_key_auth.ts`: either one. */
const API_KEY_SECURITY = [{ apiKey: [] }, { apiKeyHeader: [] }];

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
  // Paths in the order the document lists them; `/events` holds both its POST and its GET.
  const paths = mergePaths([ingestPaths(), queryPaths(maxQueryLimit), healthPaths(), adminPaths()]);
  requireApiKeys(paths, apiKeyGroups, signedBodies);

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
    components: { schemas: componentSchemas(), securitySchemes: securitySchemes() },
  };
}

/** The path items of `parts`, in order; a path in several parts gets the methods of each. */
function mergePaths(parts: PathItems[]): PathItems {
  const paths: PathItems = {};
  for (const part of parts) {
    for (const [path, methods] of Object.entries(part)) {
      paths[path] = { ...paths[path], ...methods };
    }
  }
  return paths;
}

/**
 * Marks the operations of `apiKeyGroups` as needing an API key (and a 401), and those of the
 * ingest group as taking an `X-Signature` unless `signedBodies` is off.
 */
function requireApiKeys(
  paths: PathItems,
  apiKeyGroups: readonly ("ingest" | "query")[],
  signedBodies: NonNullable<OpenApiOptions["signedBodies"]>,
): void {
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
}

/** The document's `securitySchemes`: API keys two ways, and the admin token. */
function securitySchemes(): Record<string, unknown> {
  return {
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
  };
}
