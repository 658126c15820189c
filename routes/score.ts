/**
 * `POST /score`: the rule decision for one event, now, for an edge caller that must decide whether
 * to let a login or a payment through. The event is validated like any ingested event and recorded
 * in the fraud windows under its `event_id`, so ingesting the same event later (same `event_id`)
 * does not count it twice. Nothing is written to the lake here and no alert is raised: both happen
 * when the event is ingested.
 *
 * The answer is the rules' decision and nothing else: `/score` never asks the LLM. A model call
 * takes seconds where an edge caller needs an answer now, and a model can be talked into `allow` by
 * the very events it reads, so it must never turn the rules' `review` or `block` into `allow`. The
 * LLM's verdict only reaches alerts, where it can raise the score, never lower it
 * (`shared/alert_score.ts`).
 *
 * @module
 */
import { Hono } from "hono";
import { decodeUtf8, parseBody, readBody } from "./body.ts";
import type { BodyLimits } from "./body.ts";
import { InvalidBodyError } from "../shared/errors.ts";
import type { FraudDetector } from "../pipeline/fraud/detector.ts";
import { validateEvent, type ValidationOptions } from "../pipeline/validate.ts";

/** Options of {@link scoreRoutes}. */
export interface ScoreRoutesOptions {
  detector: FraudDetector;
  validation: ValidationOptions;
  limits: BodyLimits;
  now?: () => number;
}

/** The scoring route. */
export function scoreRoutes({ detector, validation, limits, now = Date.now }: ScoreRoutesOptions) {
  const app = new Hono<{ Variables: { requestId: string } }>();

  /** 200 with `{event_id, score, decision, rules, degraded?}`; 422 when the event is invalid. */
  app.post("/score", async (c) => {
    const bytes = await readBody(c.req.raw, limits.maxBytes);
    const items = parseBody(decodeUtf8(bytes), false, limits);
    const item = items[0];
    if (items.length !== 1 || !item?.ok || Array.isArray(item.value)) {
      throw new InvalidBodyError("POST /score takes exactly one JSON event object");
    }
    const receivedAtMs = now();
    const result = validateEvent(item.value, {
      receivedAtMs,
      trustReceivedAt: false,
      source: "http",
      eventId: () => crypto.randomUUID(),
    }, validation);
    if (!result.ok) {
      return c.json({
        error: { code: "invalid_event", message: "The event is not valid", issues: result.issues },
        request_id: c.get("requestId"),
      }, 422);
    }
    const [scored] = await detector.score([result.event]);
    const { decision, degraded } = scored!;
    return c.json({
      event_id: result.event.event_id,
      user_id: result.event.user_id,
      score: decision.score,
      decision: decision.decision,
      rules: decision.rules,
      ...(degraded ? { degraded } : {}),
    });
  });
  return app;
}
