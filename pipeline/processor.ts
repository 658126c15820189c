/**
 * The processor stage of the event path, after Redpanda Connect's Processor: the lake loader hands
 * every batch of accepted events to one before buffering it (fraud scoring is the one there is,
 * `fraud/processor.ts`).
 *
 * @module
 */
import type { Envelope } from "../shared/schemas.ts";

/** A stage that sees each batch of accepted events before the lake buffers it. */
export interface EventProcessor {
  /**
   * Resolves once the batch is processed far enough for the loader to go on; `settled` resolves
   * when its side effects (alerts) are delivered. The loader commits the batch after `settled`.
   */
  process(events: Envelope[]): Promise<{ settled: Promise<void> }>;
}
