/**
 * The embedded {@link LogInput}: tails the WAL as a one-partition topic and frees the segments the
 * lake has; and the lag of the embedded log, for `/metrics`.
 *
 * @module
 */
import type { LogInput, RecordHandler } from "../durable_log.ts";
import type { LagProbe } from "../../shared/metrics.ts";
import { type Wal, WAL_TOPIC } from "./wal.ts";

/** The embedded {@link LogInput}: tails the WAL from the lake's committed offset. */
export class WalInput implements LogInput {
  readonly #wal: Wal;
  #position: number;
  #committed: number;
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;
  readonly #batch: number;
  #onError: (err: unknown) => void;

  constructor(
    wal: Wal,
    startOffset: number,
    options: { batchRecords?: number; onError: (err: unknown) => void },
  ) {
    this.#wal = wal;
    this.#position = Math.max(startOffset, wal.firstOffset);
    this.#committed = this.#position;
    this.#batch = options.batchRecords ?? 5000;
    this.#onError = options.onError;
  }

  /** Everything before this offset is in the lake. */
  get committed(): number {
    return this.#committed;
  }

  start(handler: RecordHandler): Promise<void> {
    this.#loop ??= this.#run(handler);
    return Promise.resolve();
  }

  async #run(handler: RecordHandler): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        await this.#wal.waitFor(this.#position, signal);
        if (signal.aborted) break;
        const records = await this.#wal.read(this.#position, this.#batch);
        if (records.length === 0) {
          // A closed WAL wakes every waiter at once: stop here rather than spin on microtasks.
          if (this.#wal.closed) break;
          continue;
        }
        await handler.handle(records);
        this.#position = records.at(-1)!.offset + 1;
      } catch (err) {
        this.#onError(err);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  async commit(_topic: string, _partition: number, nextOffset: number): Promise<void> {
    if (nextOffset <= this.#committed) return;
    this.#committed = nextOffset;
    await this.#wal.truncateBefore(nextOffset);
  }

  /** Waits until everything appended so far has been handed to the handler, or `timeoutMs` passes. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (
      this.#position < this.#wal.nextOffset && Date.now() < deadline && !this.#abort.signal.aborted
    ) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.#position >= this.#wal.nextOffset;
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  close(): Promise<void> {
    return this.stop();
  }
}

/** The lag of the embedded log: records appended to the WAL and not yet committed to the lake. */
export function walLagProbe(
  wal: { readonly nextOffset: number },
  input: { readonly committed: number },
): LagProbe {
  return () =>
    Promise.resolve([{ topic: WAL_TOPIC, partition: 0, lag: wal.nextOffset - input.committed }]);
}
