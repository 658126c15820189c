/**
 * Domain errors → HTTP, in one place. Routes throw; this answers with a JSON body
 * `{ "error": { "code", "message", "where"? } }` and, for 503, a `Retry-After` header.
 *
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  InvalidBodyError,
  LimitExceededError,
  OverloadedError,
  UnsupportedContentError,
} from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";

/** The status and error code of an error. */
export function toErrorStatus(err: unknown): { status: ContentfulStatusCode; code: string } {
  if (err instanceof InvalidBodyError) return { status: 400, code: "invalid_body" };
  if (err instanceof LimitExceededError) return { status: 413, code: `limit_${err.limit}` };
  if (err instanceof UnsupportedContentError) return { status: 415, code: "unsupported_content" };
  if (err instanceof OverloadedError) return { status: 503, code: "overloaded" };
  if (err instanceof HTTPException) {
    return { status: err.status as ContentfulStatusCode, code: "http_error" };
  }
  return { status: 500, code: "internal" };
}

/** A Hono error handler that keeps the process up and never leaks internals. */
export function errorHandler(logger: Logger) {
  return function onError(err: Error, c: Context): Response {
    const { status, code } = toErrorStatus(err);
    const requestId = c.get("requestId" as never) as string | undefined;
    if (status >= 500 && status !== 503) {
      logger.error("Request failed", { err, request_id: requestId, path: c.req.path });
    }
    const message = status === 500 ? "Internal error" : err.message;
    const body: Record<string, unknown> = { code, message };
    if (err instanceof InvalidBodyError && err.where) body.where = err.where;
    if (err instanceof OverloadedError) c.header("Retry-After", String(err.retryAfterSeconds));
    return c.json({ error: body, request_id: requestId }, status);
  };
}
