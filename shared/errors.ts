/**
 * Errors that callers catch. `routes/errors.ts` maps each to an HTTP status in one place.
 *
 * @module
 */

/** The request body cannot be read as events: bad JSON, bad UTF-8, bad encoding. */
export class InvalidBodyError extends Error {
  /** Where in the body: line and column (1-based) or the NDJSON line. */
  readonly where: { line: number; column: number } | undefined;
  constructor(message: string, where?: { line: number; column: number }, options?: ErrorOptions) {
    super(message, options);
    this.name = "InvalidBodyError";
    this.where = where;
  }
}

/** A configured limit was exceeded: body size, events per request, nesting depth. */
export class LimitExceededError extends Error {
  readonly limit: string;
  constructor(limit: string, message: string) {
    super(message);
    this.name = "LimitExceededError";
    this.limit = limit;
  }
}

/** A content type or encoding the gateway does not read. */
export class UnsupportedContentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedContentError";
  }
}

/**
 * The gateway cannot take more work now: queues are full, the lake is behind, or the durable log did
 * not confirm in time. Clients retry after `retryAfterSeconds`.
 */
export class OverloadedError extends Error {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds = 1, options?: ErrorOptions) {
    super(message, options);
    this.name = "OverloadedError";
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The gateway is shutting down and takes no new events. */
export class ShuttingDownError extends OverloadedError {
  constructor() {
    super("The gateway is shutting down", 5);
    this.name = "ShuttingDownError";
  }
}
