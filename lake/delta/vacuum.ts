/**
 * Retention: deletes what a table no longer needs once it is older than the retention period.
 * - Data files no live `add` names: files a commit removed (replaced partitions), and files a
 *   crashed or beaten writer left behind without a commit. Older than the retention, they cannot
 *   be in flight (a writer commits within seconds) and no snapshot a reader may still hold
 *   within that period names them.
 * - Log entries and checkpoints before the last checkpoint: a reader starts at the last
 *   checkpoint (`_last_checkpoint`), so older versions only serve time travel, for the
 *   retention period.
 *
 * @module
 */
import { decodePath } from "./protocol.ts";
import type { DeltaTable } from "./table.ts";

/** What one vacuum of one table deleted. */
export interface VacuumStats {
  table: string;
  data_files: number;
  data_bytes: number;
  log_files: number;
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
  const live = new Set([...snapshot.files.keys()].map((p) => `${table.key}/${decodePath(p)}`));
  const cutoff = now - retentionMs;
  const last = await table.lastCheckpoint();
  for await (const o of table.store.list(`${table.key}/`)) {
    if (o.mtimeMs >= cutoff) continue;
    const log = LOG_ENTRY.exec(o.key);
    if (log) {
      if (last !== undefined && Number(log[1]) < last) {
        await table.store.delete(o.key);
        stats.log_files++;
      }
      continue;
    }
    if (o.key.includes("/_delta_log/") || live.has(o.key)) continue;
    await table.store.delete(o.key);
    stats.data_files++;
    stats.data_bytes += o.size;
  }
  return stats;
}
