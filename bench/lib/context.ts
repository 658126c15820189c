/**
 * What every benchmark section is given.
 *
 * @module
 */
import type { Gateway } from "./proc.ts";
import type { Report } from "./report.ts";

/** A run's options and its report. */
export interface Bench {
  /** Seconds and tiny sizes instead of the full run. */
  smoke: boolean;
  /** Items 5–6 on 10M bronze events instead of 1M. */
  big: boolean;
  report: Report;
}

/** `full` in a full run, `smoke` in a smoke run. */
export function pick<T>(b: Bench, full: T, smoke: T): T {
  return b.smoke ? smoke : full;
}

/** Rate per second of `n` things done in `ms` milliseconds. */
export function perSec(n: number, ms: number): number {
  return ms > 0 ? (n * 1000) / ms : 0;
}

/** p50 / p95 / p99 of a list of milliseconds. */
export function percentiles(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { p50: q(0.5), p95: q(0.95), p99: q(0.99) };
}

/** Stops a gateway and keeps its warnings and errors in the report's details under `key`. */
export async function stopGateway(b: Bench, key: string, gw: Gateway): Promise<void> {
  await gw.stop();
  const problems = gw.problems();
  b.report.details[`${key}_log_problems`] = problems;
  for (const [msg, { count }] of Object.entries(problems)) {
    console.error(`bench: ${key}: gateway logged ${count}× ${msg}`);
  }
}
