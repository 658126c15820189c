/**
 * `FraudProcessor` is the stage the lake loader runs on every accepted batch: score, then raise the
 * alerts; the loader commits the batch's log offset only once its alerts are out, so a crash
 * re-raises them (same alert id, so sinks can de-duplicate) instead of losing them.
 *
 * @module
 */
import type { Envelope } from "../../shared/schemas.ts";
import type { EventProcessor } from "../processor.ts";
import type { FraudDetector, ScoredEvent } from "./detector.ts";
import type { AlertPipeline } from "./alert_pipeline.ts";

/** Scoring and alerting of the lake loader's batches. */
export class FraudProcessor implements EventProcessor {
  readonly #detector: FraudDetector;
  readonly #alerts: AlertPipeline;

  constructor(detector: FraudDetector, alerts: AlertPipeline) {
    this.#detector = detector;
    this.#alerts = alerts;
  }

  async process(events: Envelope[]): Promise<{ settled: Promise<void> }> {
    const scored: ScoredEvent[] = await this.#detector.score(events);
    const candidates = await this.#detector.candidates(scored);
    const settled = Promise.all(candidates.map((c) => this.#alerts.raise(c))).then(() => {});
    return { settled };
  }
}
