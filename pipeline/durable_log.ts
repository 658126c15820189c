/**
 * The small interfaces between inputs, processors and outputs. Two implementations each: Kafka
 * (`kafka/`) and embedded (`wal/`).
 *
 * ```
 * HTTP ──► EventLog.append ──► (durable log) ──► LogInput ──► LakeLoader ──► bronze Parquet
 *    └───► DeadLetterSink                                         └──► DeadLetterSink
 * ```
 *
 * @module
 */
import type { Issue } from "./validate.ts";
import type { Envelope } from "../shared/schemas.ts";

/** One record of a durable, offset-addressed log: a Kafka partition or the embedded WAL. */
export interface LogRecord {
  topic: string;
  partition: number;
  offset: number;
  /** Append time in ms since the epoch (Kafka's record timestamp). */
  timestampMs: number;
  value: Uint8Array;
}

/** Where accepted events become durable. A resolved append means a crash cannot lose them. */
export interface EventLog {
  /** Resolves once every event is durable (fsynced, or acknowledged by all in-sync replicas). */
  append(events: Envelope[]): Promise<void>;
  /** Why new events should be refused right now (the reason for a 503), or undefined. */
  overloaded(): string | undefined;
  close(): Promise<void>;
}

/** An event that failed validation, with the original bytes and where it came from. */
export interface DeadLetter {
  /** The original bytes or text, unchanged. */
  raw: Uint8Array | string;
  reasons: Issue[];
  source: "http" | "kafka";
  /** Reception time, ISO-8601. */
  received_at: string;
  /** HTTP: the request id and the event's index in the request. */
  request_id?: string;
  index?: number;
  /** Kafka: the record's position. */
  topic?: string;
  partition?: number;
  offset?: number;
}

/** Where rejected events go. A resolved send means the dead letters are durable. */
export interface DeadLetterSink {
  send(letters: DeadLetter[]): Promise<void>;
  close(): Promise<void>;
}

/** Receives a partition's records in offset order; may take its time (that is the backpressure). */
export interface RecordHandler {
  /** `heartbeat` keeps a consumer group member in its group while the handler waits. */
  handle(records: LogRecord[], heartbeat?: () => Promise<void>): Promise<void>;
}

/** What a {@link RecordDecoder} made of one record value. */
export type DecodedValue = { ok: true; value: unknown } | { ok: false; issues: Issue[] };

/**
 * Reads record values written in a schema registry's wire format, before validation
 * (`kafka/schema_registry.ts`). Plain JSON values are left to the loader.
 */
export interface RecordDecoder {
  /**
   * One entry per record: its decoded value, why it cannot be decoded, or `undefined` when it is
   * not framed; `undefined` instead of the array when no record is. May wait for the registry,
   * calling `heartbeat` meanwhile.
   */
  decode(
    records: LogRecord[],
    heartbeat?: () => Promise<void>,
  ): Promise<(DecodedValue | undefined)[] | undefined>;
}

/** Reads a durable log and reports progress back with {@link LogInput.commit}. */
export interface LogInput {
  /** Starts delivering records to the handler; resolves once consuming has started. */
  start(handler: RecordHandler): Promise<void>;
  /** Everything before `nextOffset` of this partition is durably in the lake. */
  commit(topic: string, partition: number, nextOffset: number): Promise<void>;
  /** Stops delivering; resolves when in-flight handle() calls have finished. Commits still work. */
  stop(): Promise<void>;
  /** Releases connections. Safe to call twice. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();

/**
 * The bytes an accepted event is stored as in the log: the envelope clients send, with every field
 * filled in, so a consumer of the topic reads the same format the HTTP API documents.
 */
export function encodeEnvelope(event: Envelope): Uint8Array {
  return encoder.encode(envelopeJson(event));
}

const q = JSON.stringify;

/**
 * {@link encodeEnvelope}'s JSON text: `{event_id, user_id, occurred_at, received_at, source,
 * payload, type}`, with `type` as sent. Written field by field: no copy of the event is made to
 * rename `event_type`.
 */
export function envelopeJson(e: Envelope): string {
  return `{"event_id":${q(e.event_id)},"user_id":${q(e.user_id)},"occurred_at":${
    q(e.occurred_at)
  },"received_at":${q(e.received_at)},"source":${q(e.source)},"payload":${q(e.payload)},"type":${
    q(e.event_type)
  }}`;
}
