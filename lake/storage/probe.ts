/**
 * The lake store's readiness: can an object be written and removed there now, and how fast (the
 * steps every bronze batch takes, on a key no reader ever lists).
 *
 * @module
 */
import type { ProbeResult } from "../../shared/health.ts";
import type { ObjectStore } from "./store.ts";

/** Options of {@link probeStore}. */
export interface StoreProbeOptions {
  /** Longer than this is `degraded`. @default 500 */
  slowMs?: number;
}

/**
 * Runs the store's probe: `down` with the reason when it fails (a lake gone or replaced, a full
 * disk, a bucket refusing writes), `degraded` when slow. It has no timeout of its own: `/ready`
 * gives every probe one (`sharedProbe` in `routes/health.ts`).
 */
export async function probeStore(
  store: ObjectStore,
  { slowMs = 500 }: StoreProbeOptions = {},
): Promise<ProbeResult> {
  const started = performance.now();
  try {
    await store.probe();
  } catch (err) {
    return { state: "down", detail: `lake store not writable: ${(err as Error).message}` };
  }
  const ms = Math.round(performance.now() - started);
  return ms > slowMs
    ? { state: "degraded", detail: `write+fsync took ${ms} ms` }
    : { state: "ok", detail: `write+fsync ${ms} ms` };
}
