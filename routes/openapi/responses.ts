/**
 * Building blocks of the OpenAPI document's operations (see `openapi.ts`): JSON content, the
 * error responses several operations share, and the sentences naming the roles that serve them.
 *
 * @module
 */
import { ref } from "./schemas.ts";

/** A document's `paths`: the operations of each path, by method. */
export type PathItems = Record<string, Record<string, unknown>>;

/** `content` of a JSON body with `schema` (and `example`, `examples`… in `extra`). */
export const json = (schema: unknown, extra: Record<string, unknown> = {}) => ({
  "application/json": { schema, ...extra },
});
export const retryAfter = {
  "Retry-After": {
    description: "Seconds to wait before retrying",
    schema: { type: "integer", minimum: 1 },
  },
};
/** A response with the common error body (`Error`). */
export function errorResponse(description: string, headers?: Record<string, unknown>) {
  return { description, ...(headers ? { headers } : {}), content: json(ref("Error")) };
}
export const overloaded = errorResponse(
  "The gateway cannot take more work now (queues full, lake behind, log slow); retry later",
  retryAfter,
);
export const internal = errorResponse("Internal error; details are logged, not answered");
export const notFound = (what: string) => errorResponse(what);
/** What reading a request body can answer (`routes/body.ts`). */
export const bodyErrors = {
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

export const rateLimited = errorResponse(
  "Over the rate limit of this API key (or client address): `RATE_LIMIT_PER_KEY` requests per " +
    "`RATE_LIMIT_WINDOW_S` (`rate_limited`); retry after `Retry-After` seconds",
  {
    ...retryAfter,
    "RateLimit-Limit": { description: "Requests per window", schema: { type: "integer" } },
    "RateLimit-Remaining": { description: "Requests left in it", schema: { type: "integer" } },
    "RateLimit-Reset": { description: "Seconds until it ends", schema: { type: "integer" } },
  },
);

export const ROLES_INGEST = "Served by the `gateway` and `all` roles.";
export const ROLES_WORKER = "Served by the `worker` and `all` roles.";
