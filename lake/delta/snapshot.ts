/**
 * The state of a Delta table at one version: its live files, the files removed and not yet
 * vacuumed, each writer's `txn` version, its metadata and protocol. Built by replaying a
 * checkpoint and the commits after it, in version order.
 *
 * @module
 */
import type { Action, AddFile, FileStats, Metadata, Protocol, RemoveFile } from "./protocol.ts";

/** The state of a table at {@link Snapshot.version}; `-1` for a table with no commit yet. */
export class Snapshot {
  version = -1;
  metadata: Metadata | undefined;
  protocol: Protocol | undefined;
  /** Live files by `add.path`. */
  readonly files = new Map<string, AddFile>();
  /** Removed files by `remove.path`, until vacuum deletes them. */
  readonly tombstones = new Map<string, RemoveFile>();
  /** The last `txn.version` of each writer (`appId`). */
  readonly txns = new Map<string, number>();
  readonly #stats = new Map<string, FileStats | null>();

  /** Applies the actions of commit `version` (or of a checkpoint at that version). */
  apply(version: number, actions: readonly Action[]): void {
    for (const a of actions) {
      if ("add" in a) {
        this.files.set(a.add.path, a.add);
        this.tombstones.delete(a.add.path);
        this.#stats.delete(a.add.path);
      } else if ("remove" in a) {
        this.files.delete(a.remove.path);
        this.tombstones.set(a.remove.path, a.remove);
        this.#stats.delete(a.remove.path);
      } else if ("txn" in a) this.txns.set(a.txn.appId, a.txn.version);
      else if ("metaData" in a) this.metadata = a.metaData;
      else if ("protocol" in a) this.protocol = a.protocol;
    }
    this.version = version;
  }

  /** The writer's last committed version (`-1` when it never committed). */
  txn(appId: string): number {
    return this.txns.get(appId) ?? -1;
  }

  /** The parsed `add.stats` of a live file (undefined when it has none), cached. */
  stats(path: string): FileStats | undefined {
    if (!this.#stats.has(path)) {
      const text = this.files.get(path)?.stats;
      let parsed: FileStats | null = null;
      try {
        parsed = text ? JSON.parse(text) as FileStats : null;
      } catch { /* a file without readable stats is never skipped */ }
      this.#stats.set(path, parsed);
    }
    return this.#stats.get(path) ?? undefined;
  }

  /** Live files whose partition values pass `keep`, sorted by path. */
  filesWhere(keep: (values: Record<string, string | null>) => boolean): AddFile[] {
    const out: AddFile[] = [];
    for (const f of this.files.values()) if (keep(f.partitionValues)) out.push(f);
    return out.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  }
}
