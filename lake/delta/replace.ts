/**
 * Replacing whole `dt` partitions of a table (silver, gold), some of their files, or adding files
 * to them: the new file of each partition is written first, then one commit removes the files it
 * replaces (as the partition was read) and adds the new ones. No rename, so it works on object storage, and a reader sees a partition before or
 * after the commit, never half of it. If another writer changed one of those partitions in
 * between, the new file was computed from stale rows: the commit is refused with
 * {@link DeltaConflictError} instead of losing that writer's rows.
 *
 * @module
 */
import type { ParquetOut } from "../engine/engine.ts";
import { partitionFile } from "../layout.ts";
import type { Action, AddFile, FileTags } from "./protocol.ts";
import { type Committed, DeltaConflictError, type DeltaTable } from "./table.ts";

interface Part {
  /** `add.path` of the files the partition had when read, sorted. */
  read: string[];
  /** Store key and size of each of those files. */
  files: PartitionFile[];
  adds: AddFile[];
  /** A new file replaces all the partition's files. */
  replace: boolean;
  /** `add.path` of the files new files replace (when not all of them). */
  removes: Set<string>;
}

/** A file of a partition: its store key and size in bytes. */
export interface PartitionFile {
  key: string;
  size: number;
}

/** The partitions one run replaces in one table. */
export class PartitionReplacement {
  readonly table: DeltaTable;
  readonly #parts = new Map<string, Part>();

  constructor(table: DeltaTable) {
    this.table = table;
  }

  /** Store keys of the files partition `dt` has now (remembered as what the new file replaces). */
  async read(dt: string): Promise<string[]> {
    return (await this.readFiles(dt)).map((f) => f.key);
  }

  /** Like {@link read}, with each file's size. */
  async readFiles(dt: string): Promise<PartitionFile[]> {
    const snapshot = await this.table.snapshot();
    const adds = snapshot.filesWhere((v) => v.dt === dt);
    const files = adds.map((f) => ({ key: this.table.keyOf(f.path), size: f.size }));
    this.#parts.set(dt, {
      read: adds.map((f) => f.path),
      files,
      adds: [],
      replace: false,
      removes: new Set(),
    });
    return files;
  }

  /**
   * Puts a new file of partition `dt` (read first); it is in the table after {@link commit}. By
   * default it replaces the partition's files; with `append` it joins them; with `replaces` (store
   * keys of some of the files read) it replaces those alone. `tags` go to its `add` action.
   */
  async write(
    dt: string,
    file: ParquetOut,
    { append = false, replaces, tags }: {
      append?: boolean;
      replaces?: readonly string[];
      tags?: FileTags;
    } = {},
  ): Promise<void> {
    const part = this.#parts.get(dt);
    if (!part) throw new Error(`Partition dt=${dt} was not read before it was written`);
    const byKey = new Map(part.files.map((f, i) => [f.key, part.read[i]!]));
    const removed = (replaces ?? []).map((key) => {
      const path = byKey.get(key);
      if (!path) throw new Error(`${key} is not a file of dt=${dt} as read`);
      return path;
    });
    part.adds.push(await this.table.putFile(partitionFile(dt), file, { dt }, tags));
    if (replaces) { for (const p of removed) part.removes.add(p); }
    // One replacing write makes the commit replace the partition; appends only add beside it.
    else if (!append) part.replace = true;
  }

  /** Partitions read but left as they are (nothing new to write). */
  forget(dt: string): void {
    this.#parts.delete(dt);
  }

  /** Commits every written partition at once; resolves `undefined` when there is nothing. */
  commit(operation = "WRITE"): Promise<Committed | undefined> {
    const parts = [...this.#parts].filter(([, p]) => p.adds.length > 0);
    return this.table.commit(operation, (snapshot) => {
      if (parts.length === 0) return undefined;
      const now = Date.now();
      const actions: Action[] = [];
      for (const [dt, part] of parts) {
        const current = snapshot.filesWhere((v) => v.dt === dt);
        const paths = current.map((f) => f.path);
        if (paths.length !== part.read.length || paths.some((p, i) => p !== part.read[i])) {
          throw new DeltaConflictError(
            `${this.table.key} dt=${dt} changed while it was being replaced (version ${snapshot.version})`,
          );
        }
        for (const f of current.filter((f) => part.replace || part.removes.has(f.path))) {
          actions.push({
            remove: {
              path: f.path,
              deletionTimestamp: now,
              dataChange: true,
              extendedFileMetadata: true,
              partitionValues: f.partitionValues,
              size: f.size,
            },
          });
        }
        for (const add of part.adds) actions.push({ add });
      }
      return actions;
    });
  }
}
