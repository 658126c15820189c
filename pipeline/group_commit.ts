/**
 * Group commit: concurrent callers each submit a few items; one flush makes many callers' items
 * durable at once (one fsync, one Kafka produce), and each caller resumes when all of its own items
 * are durable. The queue is bounded: past `maxPending` items a submit fails fast with
 * {@link OverloadedError} instead of growing memory.
 *
 * @module
 */
import { OverloadedError, ShuttingDownError } from "../shared/errors.ts";

/** Options of {@link GroupCommitter}. */
export interface GroupCommitOptions {
  /** Most items in one flush. @default 10000 */
  maxBatch?: number;
  /** Most items waiting or in flight; beyond it submit() throws OverloadedError. @default 200000 */
  maxPending?: number;
  /** Flushes running at once. @default 1 */
  concurrency?: number;
}

interface Entry<T> {
  items: T[];
  taken: number;
  unconfirmed: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Batches concurrent submissions into shared flushes. */
export class GroupCommitter<T> {
  readonly #flush: (items: T[]) => Promise<void>;
  readonly #maxBatch: number;
  readonly #maxPending: number;
  readonly #concurrency: number;
  readonly #queue: Entry<T>[] = [];
  #pending = 0;
  #running = 0;
  #closed = false;
  #idle: (() => void)[] = [];

  constructor(flush: (items: T[]) => Promise<void>, options: GroupCommitOptions = {}) {
    this.#flush = flush;
    this.#maxBatch = options.maxBatch ?? 10_000;
    this.#maxPending = options.maxPending ?? 200_000;
    this.#concurrency = options.concurrency ?? 1;
  }

  /** Items submitted and not yet confirmed. */
  get pending(): number {
    return this.#pending;
  }

  /** Resolves when every item is durable; rejects if a flush that held one of them failed. */
  submit(items: T[]): Promise<void> {
    if (this.#closed) return Promise.reject(new ShuttingDownError());
    if (items.length === 0) return Promise.resolve();
    if (this.#pending + items.length > this.#maxPending) {
      return Promise.reject(
        new OverloadedError(
          `Ingest queue is full (${this.#pending} events waiting for a durable commit)`,
        ),
      );
    }
    this.#pending += items.length;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ items, taken: 0, unconfirmed: items.length, resolve, reject });
      this.#pump();
    });
  }

  /** Stops taking submissions and waits until everything queued has been flushed. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#pending === 0) return;
    await new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    while (this.#running < this.#concurrency && this.#queue.length > 0) {
      const batch: T[] = [];
      const parts: [Entry<T>, number][] = [];
      while (batch.length < this.#maxBatch && this.#queue.length > 0) {
        const entry = this.#queue[0]!;
        const n = Math.min(entry.items.length - entry.taken, this.#maxBatch - batch.length);
        for (let i = 0; i < n; i++) batch.push(entry.items[entry.taken + i]!);
        entry.taken += n;
        parts.push([entry, n]);
        if (entry.taken === entry.items.length) this.#queue.shift();
      }
      this.#running++;
      this.#flush(batch).then(
        () => this.#settle(parts, undefined),
        (err) => this.#settle(parts, err ?? new Error("Flush failed")),
      );
    }
  }

  #settle(parts: [Entry<T>, number][], err: unknown): void {
    this.#running--;
    for (const [entry, n] of parts) {
      this.#pending -= n;
      entry.unconfirmed -= n;
      if (err !== undefined) {
        entry.unconfirmed = -Infinity; // a failed part fails the whole submission, once
        entry.reject(err);
        const at = this.#queue.indexOf(entry);
        if (at >= 0) {
          this.#pending -= entry.items.length - entry.taken;
          this.#queue.splice(at, 1);
        }
      } else if (entry.unconfirmed === 0) entry.resolve();
    }
    this.#pump();
    if (this.#pending === 0) { for (const done of this.#idle.splice(0)) done(); }
  }
}
