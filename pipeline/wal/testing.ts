/**
 * Helpers of the embedded log's tests: temporary directories, an open WAL, payloads and events.
 *
 * @module
 */
import type { LogRecord } from "../durable_log.ts";
import type { Envelope } from "../../shared/schemas.ts";
import { Wal } from "./wal.ts";

const encoder = new TextEncoder();
export const decoder = new TextDecoder();

export function bytes(s: string): Uint8Array {
  return encoder.encode(s);
}

export function texts(records: LogRecord[]): string[] {
  return records.map((r) => decoder.decode(r.value));
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
export async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wal_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Opens a WAL, runs `fn`, and always closes it. */
export async function withWal(
  dir: string,
  fn: (wal: Wal) => Promise<void>,
  options: Parameters<typeof Wal.open>[1] = {},
): Promise<void> {
  const wal = await Wal.open(dir, options);
  try {
    await fn(wal);
  } finally {
    await wal.close();
  }
}

export async function segmentFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".wal")) names.push(e.name);
  return names.sort();
}

/** 10 payloads of 20 bytes each: a frame is 36 bytes with its header. */
export const RECORDS = Array.from(
  { length: 10 },
  (_, i) => `record-${String(i).padStart(13, "0")}`,
);

/** The file name of the segment starting at `base`. */
export function name(base: number): string {
  return `${String(base).padStart(20, "0")}.wal`;
}

/** A valid login envelope, distinct per `i`. */
export function event(i: number): Envelope {
  return {
    event_id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
    type: "login",
    event_type: "login",
    user_id: `u${i}`,
    occurred_at: "2024-05-01T12:00:00.000000Z",
    received_at: "2024-05-01T12:00:01.000000Z",
    source: "http",
    payload: { i },
  };
}
