/**
 * The LLM judge's circuit breaker: after `threshold` consecutive failed calls it opens and refuses
 * calls for `resetMs`; then it lets one trial call through (half-open), which closes it on success
 * or opens it again on failure.
 *
 * @module
 */

/** The breaker's position. */
export type BreakerState = "closed" | "open" | "half-open";

/** Whether a call may go ahead (and whether it is the half-open trial), or why not. */
export type Admission = { reason: string } | { trial: boolean };

/** Options of {@linkcode CircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** Consecutive failed calls that open the circuit. */
  threshold: number;
  /** How long the circuit stays open before one half-open trial call, in ms. */
  resetMs: number;
  /** Clock, in ms since the epoch. */
  now: () => number;
}

/** Counts consecutive failures and decides whether a call may go to the model. */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #resetMs: number;
  readonly #now: () => number;
  #state: BreakerState = "closed";
  #openUntil = 0;
  #trialInFlight = false;
  #consecutiveFailures = 0;

  constructor(options: CircuitBreakerOptions) {
    this.#threshold = options.threshold;
    this.#resetMs = options.resetMs;
    this.#now = options.now;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Whether a call may go to the model now; claims the half-open trial when it is due. */
  admit(): Admission {
    if (this.#state === "closed") return { trial: false };
    if (this.#state === "open") {
      if (this.#now() < this.#openUntil) {
        return { reason: `circuit open until ${new Date(this.#openUntil).toISOString()}` };
      }
      this.#state = "half-open";
    }
    if (this.#trialInFlight) return { reason: "circuit half-open: trial call in flight" };
    this.#trialInFlight = true;
    return { trial: true };
  }

  /** A call got its answer: the circuit closes. */
  recordSuccess(): void {
    this.#consecutiveFailures = 0;
    this.#state = "closed";
    this.#trialInFlight = false;
  }

  /** A call failed: at the threshold, or on a failed trial, the circuit opens. */
  recordFailure(trial: boolean): void {
    this.#consecutiveFailures++;
    if (
      trial || (this.#state === "closed" &&
        this.#consecutiveFailures >= this.#threshold)
    ) {
      this.#state = "open";
      this.#openUntil = this.#now() + this.#resetMs;
    }
    if (trial) this.#trialInFlight = false;
  }

  /** The trial call ended without an answer either way (shutdown, queue full): another may try. */
  abandonTrial(): void {
    this.#trialInFlight = false;
  }
}
