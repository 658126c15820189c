/**
 * Cursors of `GET /events`: base64url of `1|<occurred µs>|<event_id>|<topic>|<partition>|<offset>|<check>`. A cursor
 * is a position, not a secret; the check catches truncated or edited cursors, and every field is
 * validated, so a forged one can only move the start of the page.
 *
 * @module
 */
import { InvalidQueryError, MAX_US, MIN_US } from "./params.ts";
import { type Row, toNumber } from "./rows.ts";
import { TOPIC } from "../layout.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A position in `(occurred_at, event_id, log_topic, log_partition, log_offset)` order. */
export interface Cursor {
  o: number;
  id: string;
  topic: string;
  partition: number;
  offset: number;
}

/** FNV-1a of `s` in base 36: a cursor's checksum (catches edits, not forgeries). */
export function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(36);
}

/** The cursor of the position after row `r`. */
export function encodeCursor(r: Row): string {
  const body = [
    "1",
    toNumber(r.occurred_us),
    String(r.event_id),
    String(r.log_topic),
    toNumber(r.log_partition),
    toNumber(r.log_offset),
  ].join("|");
  const bytes = new TextEncoder().encode(`${body}|${fnv1a(body)}`);
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** The position a cursor names; throws {@link InvalidQueryError} for anything else. */
export function decodeCursor(cursor: string): Cursor {
  const bad = () => new InvalidQueryError([{ path: "cursor", message: "is not a valid cursor" }]);
  if (!/^[A-Za-z0-9_-]{1,600}$/.test(cursor)) throw bad();
  let text: string;
  try {
    text = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    throw bad();
  }
  const parts = text.split("|");
  if (parts.length !== 7) throw bad();
  const [v, o, id, topic, partition, offset, check] = parts as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (v !== "1" || fnv1a(parts.slice(0, 6).join("|")) !== check) throw bad();
  if (!/^\d{1,16}$/.test(o) || !/^\d{1,10}$/.test(partition) || !/^\d{1,16}$/.test(offset)) {
    throw bad();
  }
  const c = { o: Number(o), id, topic, partition: Number(partition), offset: Number(offset) };
  if (
    c.o < MIN_US || c.o >= MAX_US || !UUID.test(id) || !TOPIC.test(topic) ||
    c.partition > 2_147_483_647 || !Number.isSafeInteger(c.offset)
  ) throw bad();
  return c;
}
