/**
 * One Delta table in the lake's store: its snapshot, kept in memory and brought up to date by
 * reading the commits after it, and commits with Delta's optimistic concurrency.
 *
 * A commit is a put-if-absent of `_delta_log/<version>.json` (an exclusive create on disk,
 * `If-None-Match: *` on S3): of two writers that both want version N, exactly one gets it. The
 * other reads what was committed and decides again: {@link DeltaTable.commit} runs the caller's
 * `attempt` on the newest snapshot, and the attempt checks what it depends on (a writer's `txn`
 * version, the files of a partition it replaces) and returns the actions to commit, nothing when
 * the work is already done, or throws {@link DeltaConflictError} when it cannot go on.
 *
 * Every `checkpointInterval` versions the committer writes a checkpoint, so a reader that starts
 * replays one Parquet file and fewer than `checkpointInterval` commits.
 *
 * @module
 */
import type { LakeEngine, ParquetOut } from "../engine/engine.ts";
import type { ObjectStore } from "../storage/store.ts";
import { readCheckpoint, writeCheckpoint } from "./checkpoint.ts";
import {
  type Action,
  type AddFile,
  checkpointKey,
  commitKey,
  dataColumns,
  decodeCommit,
  decodePath,
  encodeCommit,
  encodePath,
  type FileTags,
  lastCheckpointKey,
  PROTOCOL,
  schemaString,
  type TableSchema,
  TAGS_KEY,
} from "./protocol.ts";
import { Snapshot } from "./snapshot.ts";
import { fileStats } from "./stats.ts";

/** A concurrent commit changed what an attempt depends on: the operation cannot go on. */
export class DeltaConflictError extends Error {
  override name = "DeltaConflictError";
}

/** Options of {@link DeltaTable}. */
export interface DeltaTableOptions {
  /** The engine that writes and reads checkpoints. */
  engine: LakeEngine;
  /** Write a checkpoint every this many versions. @default 10 */
  checkpointInterval?: number;
  /** Removed files stay in checkpoints (for vacuum) this long, in ms. @default 7 days */
  tombstoneRetentionMs?: number;
  /** Attempts of one commit before giving up. @default 50 */
  maxAttempts?: number;
  /** Told of a checkpoint that could not be written (the commit itself went through). */
  onCheckpointError?: (err: unknown) => void;
  /** The clock, ms. @default Date.now */
  now?: () => number;
}

/** What a successful commit made. */
export interface Committed {
  version: number;
  actions: Action[];
}

/** A Delta table at `key` (its root, relative to the store). */
export class DeltaTable {
  readonly store: ObjectStore;
  readonly key: string;
  readonly schema: TableSchema;
  readonly #opts: Required<Omit<DeltaTableOptions, "onCheckpointError">> & DeltaTableOptions;
  #snapshot: Snapshot | undefined;
  #refreshing: Promise<Snapshot> | undefined;
  /** When the snapshot was last checked against `_last_checkpoint` (ms). */
  #checkedAt = 0;
  /** This process's commits to this table, one at a time (other tables' commits never wait). */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(store: ObjectStore, key: string, schema: TableSchema, options: DeltaTableOptions) {
    this.store = store;
    this.key = key;
    this.schema = schema;
    this.#opts = {
      checkpointInterval: 10,
      tombstoneRetentionMs: 7 * 86_400_000,
      maxAttempts: 50,
      now: Date.now,
      ...options,
    };
  }

  /** The key of a data file at `relative` (a path below the table root). */
  fileKey(relative: string): string {
    return `${this.key}/${relative}`;
  }

  /**
   * Puts a new data file at `relative` (below the table root) and returns the `add` action that
   * commits it, with its statistics. Not in the table until a commit carries the action.
   */
  async putFile(
    relative: string,
    file: ParquetOut,
    partitionValues: Record<string, string | null>,
    tags?: FileTags,
  ): Promise<AddFile> {
    await this.store.put(this.fileKey(relative), file.bytes);
    const stats = fileStats(file.rows, file.stats, dataColumns(this.schema));
    return {
      path: encodePath(relative),
      partitionValues,
      size: file.bytes.byteLength,
      modificationTime: this.#opts.now(),
      dataChange: true,
      stats: JSON.stringify(stats),
      ...(tags ? { tags: { [TAGS_KEY]: JSON.stringify(tags) } } : {}),
    };
  }

  /** The key of the data file an `add.path` (or `remove.path`) names. */
  keyOf(path: string): string {
    return this.fileKey(decodePath(path));
  }

  /** The table as of its newest commit (reads only the commits since the last call). */
  snapshot(): Promise<Snapshot> {
    this.#refreshing ??= this.#refresh().finally(() => this.#refreshing = undefined);
    return this.#refreshing;
  }

  /**
   * Like {@link snapshot}, but sure to see every commit made before the call: it never joins a
   * refresh that was already under way (which may have looked for the next commit too early).
   */
  async freshSnapshot(): Promise<Snapshot> {
    if (this.#refreshing) await this.#refreshing.catch(() => {});
    return await this.snapshot();
  }

  async #refresh(): Promise<Snapshot> {
    let snapshot = this.#snapshot ?? await this.#load();
    this.#snapshot = snapshot;
    for (let applied = 0;; applied++) {
      const bytes = await this.store.get(commitKey(this.key, snapshot.version + 1));
      if (bytes) {
        snapshot.apply(snapshot.version + 1, decodeCommit(bytes));
        continue;
      }
      // No next commit. Once a minute, make sure that is not because vacuum deleted commits
      // this (long idle) snapshot never read: then start again from the last checkpoint.
      if (applied > 0 || this.#opts.now() - this.#checkedAt < 60_000) return snapshot;
      this.#checkedAt = this.#opts.now();
      const last = await this.lastCheckpoint();
      if (last === undefined || last <= snapshot.version) return snapshot;
      this.#snapshot = snapshot = await this.#load();
    }
  }

  /** The version of the last checkpoint (`_last_checkpoint`), if there is one. */
  async lastCheckpoint(): Promise<number | undefined> {
    const last = await this.store.get(lastCheckpointKey(this.key));
    if (!last) return undefined;
    return (JSON.parse(new TextDecoder().decode(last)) as { version: number }).version;
  }

  /** The last checkpoint's state, or an empty table (version -1) when there is none. */
  async #load(): Promise<Snapshot> {
    this.#checkedAt = this.#opts.now();
    const version = await this.lastCheckpoint();
    if (version === undefined) return new Snapshot();
    const path = await this.store.localFile(checkpointKey(this.key, version));
    return await readCheckpoint(this.#opts.engine, path, version, this.schema.partitionColumns);
  }

  /**
   * Commits what `attempt` returns for the newest snapshot; runs it again on a newer snapshot
   * when another writer committed first. Resolves with the commit, or `undefined` when the
   * attempt found nothing to commit. `operation` names the commit in `commitInfo`.
   *
   * The commits of one process to one table take turns: two of them would otherwise race for the
   * same version, and the loser would back off and decide again. So an attempt should be quick
   * (write data files before, reuse them in the attempt); commits to other tables never wait.
   */
  async commit(
    operation: string,
    attempt: (snapshot: Snapshot) => Promise<Action[] | undefined> | Action[] | undefined,
  ): Promise<Committed | undefined> {
    const turn = this.#turn.then(() => this.#commitInTurn(operation, attempt));
    this.#turn = turn.catch(() => {});
    const done = await turn;
    if (done && done.version > 0 && done.version % this.#opts.checkpointInterval === 0) {
      await this.#checkpoint(done.version);
    }
    return done;
  }

  async #commitInTurn(
    operation: string,
    attempt: (snapshot: Snapshot) => Promise<Action[] | undefined> | Action[] | undefined,
  ): Promise<Committed | undefined> {
    for (let n = 1; n <= this.#opts.maxAttempts; n++) {
      const snapshot = await this.snapshot();
      const read = snapshot.version;
      const actions = await attempt(snapshot);
      if (!actions) return undefined;
      // The snapshot moved on while the attempt ran (another commit of this process): decide again.
      if (snapshot.version !== read) continue;
      const version = read + 1;
      const all: Action[] = [
        { commitInfo: { timestamp: this.#opts.now(), operation, engineInfo: "streamgate" } },
        ...(read < 0 ? this.#create() : this.#evolve(snapshot)),
        ...actions,
      ];
      if (await this.store.putIfAbsent(commitKey(this.key, version), encodeCommit(all))) {
        await this.snapshot();
        return { version, actions };
      }
      // Another writer has version N: wait a little (jittered) and decide again on its state.
      await new Promise((r) => setTimeout(r, Math.min(200, 2 ** Math.min(n, 7)) * Math.random()));
    }
    throw new Error(
      `Cannot commit to ${this.key}: ${this.#opts.maxAttempts} attempts lost to other writers`,
    );
  }

  /** The actions that create the table: protocol and metadata. */
  #create(): Action[] {
    return [
      { protocol: PROTOCOL },
      {
        metaData: {
          id: crypto.randomUUID(),
          format: { provider: "parquet", options: {} },
          schemaString: schemaString(this.schema),
          partitionColumns: [...this.schema.partitionColumns],
          configuration: {},
          createdTime: this.#opts.now(),
        },
      },
    ];
  }

  /**
   * The table's metadata with this program's schema, when the table was written with another one
   * (a column added since): readers then see the new columns; files without them read as NULL.
   */
  #evolve(snapshot: Snapshot): Action[] {
    const meta = snapshot.metadata;
    const schema = schemaString(this.schema);
    if (!meta || meta.schemaString === schema) return [];
    return [{ metaData: { ...meta, schemaString: schema } }];
  }

  /** Writes the checkpoint of `version` if the snapshot is still there; never throws. */
  async #checkpoint(version: number): Promise<void> {
    try {
      const snapshot = await this.snapshot();
      if (snapshot.version !== version) return; // a later writer checkpoints its own version
      const keepSince = this.#opts.now() - this.#opts.tombstoneRetentionMs;
      const { bytes, actions } = await writeCheckpoint(this.#opts.engine, snapshot, keepSince);
      await this.store.put(checkpointKey(this.key, version), bytes);
      await this.store.put(
        lastCheckpointKey(this.key),
        new TextEncoder().encode(JSON.stringify({ version, size: actions })),
      );
    } catch (err) {
      this.#opts.onCheckpointError?.(err);
    }
  }
}
