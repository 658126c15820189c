/**
 * What a readiness probe answers: `GET /ready` (`routes/health.ts`) gathers one per dependency.
 *
 * @module
 */

/** State of one dependency. */
export type DependencyState = "ok" | "degraded" | "down";

/** One probe's answer. */
export interface ProbeResult {
  state: DependencyState;
  detail?: string;
}
