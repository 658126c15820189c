/**
 * Time helpers shared by the event path and the lake: ISO-8601 ⇄ microseconds since the epoch
 * (the lake's timestamp unit) and calendar dates (`YYYY-MM-DD`, UTC) of partitions.
 *
 * @module
 */

/** Microseconds since the epoch of an ISO-8601 date-time with offset (already validated). */
export function isoToMicros(iso: string): number {
  const ms = Date.parse(iso);
  // Date.parse keeps milliseconds; the 4th–6th fraction digits are added back here. They always
  // move the instant forward, before 1970 too (Date.parse already floors to the millisecond).
  // A scan, not a regular expression: this runs two or three times for every event.
  const dot = iso.indexOf(".");
  if (dot < 0) return ms * 1000;
  let extra = 0, n = 0;
  for (; n < 6; n++) {
    const digit = iso.charCodeAt(dot + 1 + n) - 48;
    if (!(digit >= 0 && digit <= 9)) break;
    if (n >= 3) extra += digit * (n === 3 ? 100 : n === 4 ? 10 : 1);
  }
  if (n === 0) return isoToMicrosSlow(iso, ms); // a "." that starts no fraction
  return ms * 1000 + extra;
}

function isoToMicrosSlow(iso: string, ms: number): number {
  const frac = /\.(\d+)/.exec(iso)?.[1] ?? "";
  return ms * 1000 + Number(frac.slice(3, 6).padEnd(3, "0"));
}

/** The last {@link microsToIso} answer: the events of one request or batch share their times. */
let lastUs = NaN, lastIso = "";

/** ISO-8601 in UTC with microseconds, e.g. `2024-05-01T12:00:00.123456Z`. */
export function microsToIso(us: number): string {
  if (us === lastUs) return lastIso;
  const ms = Math.floor(us / 1000);
  const rest = us - ms * 1000;
  const iso = new Date(ms).toISOString(); // ends with "Z"
  lastUs = us;
  return lastIso = iso.slice(0, -1) + String(rest).padStart(3, "0") + "Z";
}

/** A valid calendar-shaped date, `YYYY-MM-DD`. */
export const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;

/** The UTC date `days` after (or before) a `YYYY-MM-DD` date. */
export function addDays(dt: string, days: number): string {
  return new Date(Date.parse(`${dt}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
}

/** The UTC date (`YYYY-MM-DD`) of a time in µs since the epoch. */
export function microsToDate(us: number): string {
  return new Date(Math.floor(us / 1000)).toISOString().slice(0, 10);
}

/** Days since 1970-01-01 of a `YYYY-MM-DD` date (what `epoch_us(ts) // 86400000000` gives). */
export function dateToDay(dt: string): number {
  if (!DATE.test(dt)) throw new Error(`Invalid date "${dt}"`);
  return Math.floor(Date.parse(`${dt}T00:00:00Z`) / 86_400_000);
}

/** The `YYYY-MM-DD` date of a day number (days since 1970-01-01). */
export function dayToDate(day: number): string {
  return new Date(day * 86_400_000).toISOString().slice(0, 10);
}
