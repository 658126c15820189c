/**
 * The lake's disk: {@link LakeRoot}, the lake directory as it was at start, which writers check
 * before writing; and readiness (can a file be written, fsynced, renamed and removed there, and
 * how fast: the same steps every bronze batch takes, on a file no reader ever lists).
 *
 * @module
 */
import { join } from "node:path";
import type { DependencyState } from "../routes/health.ts";
import { PROGRESS_DIR } from "./layout.ts";

/** Thrown by {@link LakeRoot.check}: the lake directory is gone or is another one. */
export class LakeGoneError extends Error {
  override name = "LakeGoneError";
}

/**
 * The lake directory, created once at start and remembered by device and inode. Writers call
 * {@link check} before writing, and create directories only below it: a `LAKE_DIR` that vanishes
 * (an unmounted volume, a deleted or moved directory) makes writes fail, and offsets stay where
 * they are, instead of a new empty lake being made at the same path, taking the batches and
 * committing their offsets while the real lake never sees them.
 */
export class LakeRoot {
  private constructor(
    readonly dir: string,
    readonly dev: number,
    readonly ino: number | null,
  ) {}

  /** Creates `dir` if needed and remembers which directory it is. */
  static async open(dir: string): Promise<LakeRoot> {
    await Deno.mkdir(dir, { recursive: true });
    const st = await Deno.stat(dir);
    return new LakeRoot(dir, st.dev, st.ino);
  }

  /** Throws {@link LakeGoneError} unless `dir` is still the directory it was at start. */
  async check(): Promise<void> {
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(this.dir);
    } catch (err) {
      throw new LakeGoneError(
        `LAKE_DIR ${this.dir} is gone (${(err as Error).message}); not writing, and not ` +
          `recreating it: bring it back (mount the volume) or restart with a new one`,
      );
    }
    if (!st.isDirectory || st.dev !== this.dev || st.ino !== this.ino) {
      throw new LakeGoneError(
        `LAKE_DIR ${this.dir} is not the directory it was at start (${
          st.isDirectory ? "another directory" : "not a directory"
        }); not writing: bring the old one back, or restart to use this one`,
      );
    }
  }
}

/** Options of {@link probeLakeDisk}. */
export interface DiskProbeOptions {
  /** Longer than this is `degraded`. @default 500 */
  slowMs?: number;
  /** The lake as it was at start: a lake gone or replaced is `down`, and not recreated. */
  root?: LakeRoot | undefined;
}

/**
 * Writes, fsyncs, renames and removes a probe file under `$LAKE_DIR/_progress/`. It has no
 * timeout of its own: `/ready` gives every probe one (`sharedProbe` in `routes/health.ts`).
 */
export async function probeLakeDisk(
  lakeDir: string,
  { slowMs = 500, root }: DiskProbeOptions = {},
): Promise<{ state: DependencyState; detail?: string }> {
  const dir = join(lakeDir, PROGRESS_DIR);
  const tmp = join(dir, `.ready-probe-${crypto.randomUUID()}.tmp`);
  const started = performance.now();
  try {
    await root?.check();
    await Deno.mkdir(dir, { recursive: true });
    using file = await Deno.open(tmp, { write: true, createNew: true });
    await file.write(new TextEncoder().encode("probe"));
    await file.sync();
    await Deno.rename(tmp, `${tmp}.done`);
    await Deno.remove(`${tmp}.done`);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    return { state: "down", detail: `lake disk not writable: ${(err as Error).message}` };
  }
  const ms = Math.round(performance.now() - started);
  return ms > slowMs
    ? { state: "degraded", detail: `write+fsync took ${ms} ms` }
    : { state: "ok", detail: `write+fsync ${ms} ms` };
}
