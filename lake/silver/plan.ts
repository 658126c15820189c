/**
 * What a silver run reads: the bronze batches silver has not read yet (a batch is the files of one
 * offset range of one log partition, all committed together), taken whole, in offset order, round
 * robin over log partitions, until the run's budget is spent; and silver's own progress
 * (`_progress/silver.json`). Bronze is read from one snapshot of its Delta log: only committed
 * files, never a directory listing.
 *
 * @module
 */
import type { ObjectStore } from "../storage/store.ts";
import type { Snapshot } from "../delta/snapshot.ts";
import { decodePath, fileTags } from "../delta/protocol.ts";
import { type BronzeFile, JOB_KEYS, parseBronzeFile, readJson } from "../layout.ts";

/**
 * The silver layout this code writes: 2 = files carry `payload` and `user_key` and are sorted by
 * `user_key`, so the query API answers events from silver. A lake whose silver was first written
 * by older code keeps its older layout (its files lack those columns) until silver is rebuilt;
 * queries read bronze alone on such a lake. Renaming, dropping or retyping a column the query API
 * reads (`COMMON_COLUMNS`, `payload`, `user_key`) needs a new layout: queries read silver files
 * without `union_by_name`, and DuckDB-wasm 1.28 then skips a file that differs, without an error.
 */
export const SILVER_LAYOUT = 2;

/** `_progress/silver.json`. */
export interface SilverProgress {
  /** The layout of every silver file (see {@link SILVER_LAYOUT}); 1 for files of older code. */
  layout: number;
  /** Completed runs that changed something. */
  run: number;
  /** Per `<topic>+<partition>`: the first bronze offset silver has not read yet. */
  watermarks: Record<string, number>;
  /** Per occurred date: the run that last rewrote one of its domain partitions (gold reads it). */
  dates: Record<string, number>;
}

/** Reads silver's progress (empty when silver never ran). */
export async function readSilverProgress(store: ObjectStore): Promise<SilverProgress> {
  const p = await readJson<Partial<SilverProgress>>(store, JOB_KEYS.silverProgress);
  return {
    // Progress without a layout was written by code older than layouts (unless silver never ran).
    layout: p?.layout ?? (p?.run ? 1 : SILVER_LAYOUT),
    run: p?.run ?? 0,
    watermarks: p?.watermarks ?? {},
    dates: p?.dates ?? {},
  };
}

/** A bronze file a run may read, with what the table's log says of it. */
export interface PlannedFile extends BronzeFile {
  /** Rows (the log's `numRecords`). */
  rows: number;
  /** It carries typed payload columns (`bronze.ts`); older files are cast from their JSON. */
  typed: boolean;
  /** Some of its rows go to silver's rejects (an `other` file, or a `reject` value). */
  mayReject: boolean;
}

/** The files of one offset range of one log partition. */
export interface Batch {
  key: string;
  topic: string;
  partition: number;
  first: number;
  last: number;
  files: PlannedFile[];
}

/** The unread bronze batches of a bronze snapshot, in offset order per log partition. */
export function pendingBatches(bronze: Snapshot, progress: SilverProgress): Batch[][] {
  const byPartition = new Map<string, Map<number, Batch>>();
  for (const add of bronze.files.values()) {
    const parsed = parseBronzeFile(decodePath(add.path));
    if (!parsed) continue;
    const stats = bronze.stats(add.path);
    const rows = stats?.numRecords ?? parsed.last - parsed.first + 1;
    const nulls = stats?.nullCount.reject;
    const f: PlannedFile = {
      ...parsed,
      rows,
      typed: fileTags(add).typed === true,
      mayReject: parsed.type === "other" || nulls === undefined || nulls < rows,
    };
    const key = `${f.topic}+${f.partition}`;
    let batches = byPartition.get(key);
    if (!batches) byPartition.set(key, batches = new Map());
    const b = batches.get(f.first);
    if (b) {
      if (b.last !== f.last) throw new Error(`Bronze batches overlap in ${key} at ${f.first}`);
      b.files.push(f);
    } else {
      const { topic, partition, first, last } = f;
      batches.set(f.first, { key, topic, partition, first, last, files: [f] });
    }
  }
  const out: Batch[][] = [];
  for (const [key, batches] of [...byPartition].sort(([a], [b]) => a < b ? -1 : 1)) {
    const from = progress.watermarks[key] ?? 0;
    const list = [...batches.values()]
      .filter((b) => b.first >= from)
      .sort((a, b) => a.first - b.first);
    if (list.length > 0) out.push(list);
  }
  return out;
}

/** Takes whole batches, round-robin over log partitions, until the budget is spent. */
export function takeBudget(partitions: Batch[][], maxRows: number, maxFiles: number) {
  const taken: Batch[] = [];
  let rows = 0, files = 0;
  const cursors = partitions.map(() => 0);
  for (let progress = true; progress;) {
    progress = false;
    for (let p = 0; p < partitions.length; p++) {
      const b = partitions[p]![cursors[p]!];
      if (!b) continue;
      const span = b.last - b.first + 1;
      if (taken.length > 0 && (rows + span > maxRows || files + b.files.length > maxFiles)) {
        return { taken, more: true };
      }
      taken.push(b);
      rows += span;
      files += b.files.length;
      cursors[p]!++;
      progress = true;
    }
  }
  return { taken, more: false };
}

/**
 * Groups the taken batches' files into read steps of about `rows` rows (estimated from offset
 * ranges) and at most `files` files each.
 */
export function* readGroups(
  batches: Batch[],
  rows: number,
  files: number,
): Generator<PlannedFile[]> {
  let group: PlannedFile[] = [], span = 0;
  for (const b of batches) {
    const perFile = (b.last - b.first + 1) / b.files.length;
    for (const f of b.files) {
      group.push(f);
      span += perFile;
      if (span >= rows || group.length >= files) {
        yield group;
        group = [];
        span = 0;
      }
    }
  }
  if (group.length > 0) yield group;
}
