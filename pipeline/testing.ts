/**
 * Test doubles of the log interfaces: an {@link EventLog} and a {@link DeadLetterSink} in memory
 * that can be told to be overloaded, to fail or to hang.
 *
 * @module
 */
import type { DeadLetter, DeadLetterSink, EventLog } from "./durable_log.ts";
import type { Envelope, EventType } from "../shared/schemas.ts";

/** How a double answers: normally, with an error, or never (until released or closed). */
export type Mode = "ok" | "fail" | "hang";

/** An error whose message and stack must never reach a client. */
export function internalError(): Error {
  const err = new Error("broker kafka-1:9092 refused the produce");
  err.stack = `Error: secret\n    at produce (file:///srv/app/pipeline/kafka.ts:120:7)`;
  return err;
}

/** An {@link EventLog} in memory. */
export class MemoryLog implements EventLog {
  readonly events: Envelope[] = [];
  appendCalls = 0;
  /** What {@link overloaded} answers. */
  busy: string | undefined;
  mode: Mode = "ok";
  readonly #hung: (() => void)[] = [];

  append(events: Envelope[]): Promise<void> {
    this.appendCalls++;
    if (this.mode === "fail") return Promise.reject(internalError());
    if (this.mode === "hang") return new Promise((resolve) => this.#hung.push(resolve));
    this.events.push(...events);
    return Promise.resolve();
  }
  /** Lets every hanging append resolve. */
  release(): void {
    for (const release of this.#hung.splice(0)) release();
  }
  overloaded(): string | undefined {
    return this.busy;
  }
  close(): Promise<void> {
    this.release();
    return Promise.resolve();
  }
}

/** A {@link DeadLetterSink} in memory. */
export class MemoryDeadLetters implements DeadLetterSink {
  readonly letters: DeadLetter[] = [];
  mode: Exclude<Mode, "hang"> = "ok";

  send(letters: DeadLetter[]): Promise<void> {
    if (this.mode === "fail") return Promise.reject(internalError());
    this.letters.push(...letters);
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The smallest valid payload of every type; a type missing here fails to type-check. */
export const MINIMAL_PAYLOADS: Record<EventType, Record<string, unknown>> = {
  login: {},
  logout: {},
  login_failed: {},
  purchase: { amount: 19.99 },
  add_to_cart: { product_id: "p-1", quantity: 1 },
  refund: { order_id: "o-1", amount: 5 },
  click: {},
  page_view: { page: "/home" },
  api_call: { endpoint: "/v1/things", status_code: 200 },
  file_access: { path: "/docs/a.pdf", action: "read" },
  radio_play: { station_id: "st-1" },
  tv_play: { channel_id: "ch-1" },
  sale: { product_id: "p-1", quantity: 2, unit_price: 1.5, amount: 3 },
};

/** Bytes of zeros per chunk fed to {@link gzipZeros}' compressor. */
const ZEROS_CHUNK = 1024 * 1024;

/** `n` bytes of zeros, gzip-compressed as a stream: the bomb is never held uncompressed. */
export async function gzipZeros(n: number): Promise<Uint8Array<ArrayBuffer>> {
  const chunk = new Uint8Array(ZEROS_CHUNK);
  let left = n;
  const zeros = new ReadableStream<Uint8Array<ArrayBuffer>>({
    pull(c) {
      if (left <= 0) return c.close();
      c.enqueue(left >= ZEROS_CHUNK ? chunk : chunk.subarray(0, left));
      left -= ZEROS_CHUNK;
    },
  });
  return new Uint8Array(
    await new Response(zeros.pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  );
}

/** The headers of a JSON request body. */
export const JSON_HEADERS: Record<string, string> = { "content-type": "application/json" };

/** A valid login event as a client sends it, with `overrides` applied. */
export function loginEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: "login",
    user_id: "u-1",
    occurred_at: "2024-05-01T11:59:00Z",
    payload: { ip: "203.0.113.7" },
    ...overrides,
  };
}
