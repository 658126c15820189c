/**
 * The HTTP side of the event path: validate a request's events, make the accepted ones durable in
 * the log and the rejected ones durable in the dead-letter sink, and only then answer. Routes call
 * {@link Ingestor.ingest}; they never see Kafka or the WAL.
 *
 * @module
 */
import { OverloadedError } from "../shared/errors.ts";
import type { DeadLetter, DeadLetterSink, EventLog } from "./durable_log.ts";
import { type Metrics, typeOf } from "../shared/metrics.ts";
import type { Envelope } from "../shared/schemas.ts";
import { type Issue, validateEvent, type ValidationOptions } from "./validate.ts";

/**
 * One item of a body: a parsed value, or an NDJSON line that could not be parsed. `raw` is the text
 * a dead letter keeps; `rawBytesAtMost`, when set, bounds its UTF-8 size, so an item that cannot be
 * too large is never serialised (the elements of an array are, only when rejected).
 */
export type BodyItem =
  | { ok: true; value: unknown; readonly raw: string; rawBytesAtMost?: number }
  | { ok: false; raw: string; message: string };

/** One rejected event of a request. */
export interface Rejection {
  index: number;
  event_id?: string;
  issues: Issue[];
}

/** What happened to a request's events. */
export interface IngestResult {
  accepted: number;
  rejected: Rejection[];
  /** The accepted events, for callers that score them. */
  events: Envelope[];
}

/** Options of {@link Ingestor}. */
export interface IngestorOptions {
  validation: ValidationOptions;
  /** Longest wait for durability before answering 503. */
  timeoutMs: number;
  /** The clock; tests pass a fixed one. */
  now?: () => number;
  /**
   * Largest event, as the JSON text sent: one record must fit a Kafka produce request (the
   * broker's message.max.bytes), or it would fail the group commit of every request sharing it.
   * @default 900000
   */
  maxEventBytes?: number;
  /** Counts events (`source="http"`), dead letters and the events waiting for the log. */
  metrics?: Metrics;
}

/** HTTP events → validation → durable log + dead letters. */
export class Ingestor {
  readonly #log: EventLog;
  readonly #deadLetters: DeadLetterSink;
  readonly #opts: IngestorOptions;
  readonly #now: () => number;

  constructor(log: EventLog, deadLetters: DeadLetterSink, options: IngestorOptions) {
    this.#log = log;
    this.#deadLetters = deadLetters;
    this.#opts = options;
    this.#now = options.now ?? Date.now;
  }

  /** Why the gateway would refuse events now, or undefined when it takes them. */
  overloaded(): string | undefined {
    return this.#log.overloaded();
  }

  /**
   * Validates and stores a request's events. Resolves once accepted and rejected events are both
   * durable.
   *
   * @throws {OverloadedError} when the log refuses or does not confirm within the timeout.
   */
  async ingest(items: BodyItem[], requestId: string): Promise<IngestResult> {
    const busy = this.#log.overloaded();
    if (busy) throw new OverloadedError(busy);
    const receivedAtMs = this.#now();
    const receivedAt = new Date(receivedAtMs).toISOString();
    const events: Envelope[] = [];
    const rejected: Rejection[] = [];
    const letters: DeadLetter[] = [];
    const types: unknown[] = [];
    const rejectedTypes: unknown[] = [];
    const ctx = {
      receivedAtMs,
      trustReceivedAt: false,
      source: "http",
      eventId: () => crypto.randomUUID(),
    };
    const maxBytes = this.#opts.maxEventBytes ?? 900_000;
    items.forEach((item, index) => {
      let issues: Issue[];
      const type = item.ok ? typeOf(item.value) : undefined;
      types.push(type);
      const small = item.ok && (item.rawBytesAtMost ?? Infinity) <= maxBytes;
      const size = small ? 0 : utf8Bytes(item.raw, maxBytes);
      if (item.ok && size > maxBytes) {
        issues = [{
          path: "",
          code: "too_large",
          message: `Event is ${size} bytes of JSON; the limit is ${maxBytes}`,
        }];
      } else if (item.ok) {
        const result = validateEvent(item.value, ctx, this.#opts.validation);
        if (result.ok) {
          events.push(result.event);
          return;
        }
        issues = result.issues;
      } else {
        issues = [{ path: "", code: "invalid_json", message: item.message }];
      }
      rejectedTypes.push(type);
      const id = (item.ok && typeof item.value === "object" && item.value !== null)
        ? (item.value as { event_id?: unknown }).event_id
        : undefined;
      rejected.push({
        index,
        ...(typeof id === "string" ? { event_id: id.slice(0, 64) } : {}),
        issues,
      });
      letters.push(
        httpDeadLetter(item.raw, issues, {
          size: small ? utf8Bytes(item.raw, maxBytes) : size,
          maxBytes,
          receivedAt,
          requestId,
          index,
        }),
      );
    });

    const metrics = this.#opts.metrics;
    metrics?.events("received", "http", types);
    const appended = this.#log.append(events);
    let sent = this.#deadLetters.send(letters);
    if (metrics) {
      metrics.ingestPending(events.length);
      const done = () => metrics.ingestPending(-events.length);
      appended.then(done, done);
      sent = sent.then(() => metrics.deadLetters(letters));
    }
    await withTimeout(Promise.all([appended, sent]), this.#opts.timeoutMs);
    metrics?.events("accepted", "http", events.map((e) => e.type));
    metrics?.events("rejected", "http", rejectedTypes);
    return { accepted: events.length, rejected, events };
  }
}

/** Where and how big a rejected HTTP event was, for {@link httpDeadLetter}. */
interface DeadLetterOptions {
  /** UTF-8 bytes of the raw event. */
  size: number;
  /** Largest record the dead-letter destination takes (the log's limit). */
  maxBytes: number;
  receivedAt: string;
  requestId: string;
  /** The event's index in its request. */
  index: number;
}

/** The dead letter of a rejected HTTP event; one too large for the destination is cut short. */
function httpDeadLetter(raw: string, issues: Issue[], options: DeadLetterOptions): DeadLetter {
  const { size, maxBytes, receivedAt, requestId, index } = options;
  // The dead-letter destination has the same record size limit as the log.
  const cut = size > maxBytes;
  return {
    // A third of the limit in characters is at most the limit in UTF-8 bytes.
    raw: cut ? raw.slice(0, Math.floor(maxBytes / 3)) : raw,
    reasons: cut
      ? [...issues, {
        path: "",
        code: "raw_truncated",
        message: `raw holds the start of an event of ${size} bytes`,
      }]
      : issues,
    source: "http",
    received_at: receivedAt,
    request_id: requestId,
    index,
  };
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new OverloadedError(`The durable log did not confirm within ${ms} ms`, 2)),
      ms,
    );
  });
  try {
    return await Promise.race([work, timeout]);
  } catch (err) {
    if (err instanceof OverloadedError) throw err;
    throw new OverloadedError(`Cannot store events durably: ${(err as Error).message}`, 2, {
      cause: err,
    });
  } finally {
    clearTimeout(timer);
  }
}

/** UTF-8 length of `text`, computed only when it could exceed `max` (3 bytes a UTF-16 unit). */
function utf8Bytes(text: string, max: number): number {
  return text.length * 3 <= max ? text.length : new TextEncoder().encode(text).byteLength;
}
