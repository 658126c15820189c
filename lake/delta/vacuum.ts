/**
 * Retention: deletes what a table no longer needs once it is older than the retention period.
 * - Data files a commit removed (replaced partitions): no snapshot a reader may still hold within
 *   the retention period names them.
 * - Data files no commit names: a crashed or beaten writer's, or a writer's in flight (written,
 *   not yet committed). Those are kept for at least {@link IN_FLIGHT_MS} whatever the retention:
 *   deleting a file a live writer is about to commit would commit a file that is gone.
 * - Temporary files of puts a crash cut short (local disk), after {@link IN_FLIGHT_MS} too.
 * - Log entries and checkpoints before the last checkpoint: a reader starts at the last
 *   checkpoint (`_last_checkpoint`), so older versions only serve time travel, for the
 *   retention period.
 *
 * @module
 */
import { decodePath } from "./protocol.ts";
import type { DeltaTable } from "./table.ts";
import type { ObjectStore } from "../storage/store.ts";

/** What one vacuum of one table deleted. */
export interface VacuumStats {
  table: string;
  data_files: number;
  data_bytes: number;
  log_files: number;
}

/** A file no commit names is kept at least this long (ms): a writer commits within it. */
export const IN_FLIGHT_MS = 3_600_000;

/** A store that leaves temporary files of interrupted writes behind (local disk). */
export interface TempSweepingStore extends ObjectStore {
  /** Deletes temporary files below `prefix` last modified before `cutoffMs`; returns how many. */
  sweepTemp(prefix: string, cutoffMs: number): Promise<number>;
}

function sweepsTemp(store: ObjectStore): store is TempSweepingStore {
  return typeof (store as Partial<TempSweepingStore>).sweepTemp === "function";
}

const LOG_ENTRY = /\/_delta_log\/(\d{20})\.(json|checkpoint\.parquet)$/;

/** Vacuums `table`: see the module documentation. `retentionMs` of 0 keeps nothing unneeded. */
export async function vacuum(
  table: DeltaTable,
  retentionMs: number,
  now = Date.now(),
): Promise<VacuumStats> {
  const stats: VacuumStats = { table: table.key, data_files: 0, data_bytes: 0, log_files: 0 };
  const snapshot = await table.snapshot();
  if (snapshot.version < 0) return stats;
  const keyOf = (p: string) => `${table.key}/${decodePath(p)}`;
  const live = new Set([...snapshot.files.keys()].map(keyOf));
  const removed = new Set([...snapshot.tombstones.keys()].map(keyOf));
  const cutoff = now - retentionMs;
  const inFlightCutoff = now - Math.max(retentionMs, IN_FLIGHT_MS);
  const last = await table.lastCheckpoint();
  for await (const o of table.store.list(`${table.key}/`)) {
    const log = LOG_ENTRY.exec(o.key);
    if (log) {
      if (o.mtimeMs < cutoff && last !== undefined && Number(log[1]) < last) {
        await table.store.delete(o.key);
        stats.log_files++;
      }
      continue;
    }
    if (o.key.includes("/_delta_log/") || live.has(o.key)) continue;
    if (o.mtimeMs >= (removed.has(o.key) ? cutoff : inFlightCutoff)) continue;
    await table.store.delete(o.key);
    stats.data_files++;
    stats.data_bytes += o.size;
  }
  if (sweepsTemp(table.store)) await table.store.sweepTemp(`${table.key}/`, inFlightCutoff);
  return stats;
}
