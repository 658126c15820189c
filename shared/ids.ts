/**
 * Deterministic ids: the same input always gives the same id, so re-processing a record after a
 * crash names the same event (and the same alert) again.
 *
 * @module
 */
import { createHash } from "node:crypto";

/**
 * A stable event id for a Kafka record that has none: a name-based (v5-style) UUID of its position,
 * so that re-reading the record after a crash gives it the same id.
 */
export function recordEventId(topic: string, partition: number, offset: number): string {
  return nameUuid(`${topic}/${partition}/${offset}`);
}

/** A name-based (version 5 layout, SHA-1) UUID: the same name always gives the same id. */
export function nameUuid(name: string): string {
  const h = createHash("sha1").update(name).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}
