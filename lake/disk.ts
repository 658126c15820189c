/**
 * Readiness of the lake's disk: can a file be written, fsynced, renamed and removed there, and how
 * fast. The same steps every bronze batch takes, on a file no reader ever lists.
 *
 * @module
 */
import { join } from "node:path";
import type { DependencyState } from "../routes/health.ts";
import { PROGRESS_DIR } from "./layout.ts";

/** Options of {@link probeLakeDisk}. */
export interface DiskProbeOptions {
  /** Longer than this is `degraded`. @default 500 */
  slowMs?: number;
  /** Longer than this is `down`. @default 5000 */
  timeoutMs?: number;
}

/** Writes, fsyncs, renames and removes a probe file under `$LAKE_DIR/_progress/`. */
export async function probeLakeDisk(
  lakeDir: string,
  { slowMs = 500, timeoutMs = 5000 }: DiskProbeOptions = {},
): Promise<{ state: DependencyState; detail?: string }> {
  const dir = join(lakeDir, PROGRESS_DIR);
  const tmp = join(dir, `.ready-probe-${crypto.randomUUID()}.tmp`);
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([
      (async () => {
        await Deno.mkdir(dir, { recursive: true });
        using file = await Deno.open(tmp, { write: true, createNew: true });
        await file.write(new TextEncoder().encode("probe"));
        await file.sync();
        await Deno.rename(tmp, `${tmp}.done`);
        await Deno.remove(`${tmp}.done`);
      })(),
      timeout,
    ]);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    return { state: "down", detail: `lake disk not writable: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
  const ms = Math.round(performance.now() - started);
  return ms > slowMs
    ? { state: "degraded", detail: `write+fsync took ${ms} ms` }
    : { state: "ok", detail: `write+fsync ${ms} ms` };
}
