/**
 * `POST /events` and `GET /schemas`.
 *
 * @module
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { type BodyLimits, decodeUtf8, isNdjson, parseBody, readBody } from "./body.ts";
import { OverloadedError } from "../shared/errors.ts";
import type { Ingestor } from "../pipeline/ingest.ts";
import type { Logger } from "../shared/logger.ts";
import { allJsonSchemas, EVENT_TYPES, type EventType } from "../shared/schemas.ts";

/** Options of {@link eventRoutes}. */
export interface EventRoutesOptions {
  ingestor: Ingestor;
  limits: BodyLimits;
  logger: Logger;
  /** Called with the accepted events of each request, after they are durable (e.g. scoring). */
  onAccepted?: (result: Awaited<ReturnType<Ingestor["ingest"]>>) => void;
}

/** The ingest routes. */
export function eventRoutes({ ingestor, limits, logger, onAccepted }: EventRoutesOptions) {
  const app = new Hono<{ Variables: { requestId: string } }>();

  /**
   * 202: every accepted event is durable; `rejected` lists the others by index with their issues
   * (they went to the dead-letter destination). 422: nothing was accepted.
   */
  app.post("/events", async (c) => {
    // Refuse before reading the body: under overload, reading it is already work we cannot afford.
    const busy = ingestor.overloaded();
    if (busy) throw new OverloadedError(busy);
    const ndjson = isNdjson(c.req.header("content-type") ?? null);
    const bytes = await readBody(c.req.raw, limits.maxBytes);
    const items = parseBody(decodeUtf8(bytes), ndjson, limits);
    const result = await ingestor.ingest(items, c.get("requestId"));
    try {
      onAccepted?.(result);
    } catch (err) {
      // The events are durable already: a failing hook must not turn their 202 into a retry.
      logger.error("Post-ingest hook failed", { err, request_id: c.get("requestId") });
    }
    return c.json({
      accepted: result.accepted,
      rejected: result.rejected,
      event_ids: result.events.map((e) => e.event_id),
    }, result.accepted === 0 && result.rejected.length > 0 ? 422 : 202);
  });

  const schemas = allJsonSchemas();
  app.get("/schemas", (c) => c.json(schemas));
  app.get("/schemas/:type", (c) => {
    const type = c.req.param("type");
    if (!(EVENT_TYPES as string[]).includes(type)) {
      throw new HTTPException(404, { message: `No schema for event type "${type.slice(0, 64)}"` });
    }
    return c.json(schemas[type as EventType]);
  });
  return app;
}
