/**
 * The embedded {@link EventLog}: accepted HTTP events → the WAL, durable once fsynced. It refuses
 * new events while the lake is too far behind the log.
 *
 * @module
 */
import { encodeEnvelope, type EventLog } from "../durable_log.ts";
import type { Envelope } from "../../shared/schemas.ts";
import type { Wal } from "./wal.ts";

/** Options of {@link WalEventLog}. */
export interface WalEventLogOptions {
  /** Events durable in the WAL but not yet in the lake, beyond which appends are refused. */
  maxLagEvents: number;
}

/** The embedded {@link EventLog}: a 2xx after the fsync of the WAL. */
export class WalEventLog implements EventLog {
  readonly #wal: Wal;
  readonly #maxLag: number;
  #committed: () => number;

  constructor(wal: Wal, committed: () => number, options: WalEventLogOptions) {
    this.#wal = wal;
    this.#committed = committed;
    this.#maxLag = options.maxLagEvents;
  }

  append(events: Envelope[]): Promise<void> {
    return this.#wal.append(events.map(encodeEnvelope));
  }

  overloaded(): string | undefined {
    const lag = this.#wal.nextOffset - this.#committed();
    if (lag > this.#maxLag) {
      return `The lake is ${lag} events behind the log (limit ${this.#maxLag})`;
    }
    return undefined;
  }

  close(): Promise<void> {
    return this.#wal.close();
  }
}
