/**
 * The LLM judge's bounded queue: at most `concurrency` calls hold a slot at once and at most
 * `maxQueue` wait for one; beyond that a call is refused at once, so alerts never pile up behind a
 * slow model.
 *
 * @module
 */

/** Slots for calls in flight, and a bounded line of calls waiting for one. */
export class ConcurrencyLimit {
  readonly #concurrency: number;
  readonly #maxQueue: number;
  #waiters: ((granted: boolean) => void)[] = [];
  #inFlight = 0;

  constructor(concurrency: number, maxQueue: number) {
    this.#concurrency = concurrency;
    this.#maxQueue = maxQueue;
  }

  /** Calls holding a slot. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Calls waiting for a slot. */
  get queued(): number {
    return this.#waiters.length;
  }

  /** A slot now, a promise of one (false on close), or null when the queue is full. */
  acquire(): Promise<boolean> | null {
    if (this.#inFlight < this.#concurrency) {
      this.#inFlight++;
      return Promise.resolve(true);
    }
    if (this.#waiters.length >= this.#maxQueue) return null;
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Gives a slot back: to the first waiter, or free. */
  release(): void {
    const next = this.#waiters.shift();
    if (next !== undefined) next(true); // The slot passes on; inFlight stays.
    else this.#inFlight--;
  }

  /** Tells every waiting call it gets no slot (shutdown). */
  refuseWaiting(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter(false);
  }
}
