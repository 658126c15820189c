/**
 * The lake's one storage seam. Every byte a lake table writes, reads, lists or deletes goes through
 * an {@link ObjectStore}: today's local disk ({@link ../storage/local.ts}) and S3-compatible object
 * storage implement it, and the table code never knows which one it has.
 *
 * The interface is shaped by what an object store can do, not by what a disk can: there is no
 * rename, no fsync, no lock and no directory. Atomicity comes from two steps every store offers:
 * - {@link ObjectStore.put} replaces a whole object: a reader sees the old bytes or the new ones;
 * - {@link ObjectStore.putIfAbsent} creates an object only if no object has that key: of two
 *   concurrent callers exactly one wins. Commit protocols (a table's log) are built on it.
 *
 * Keys are relative, `/`-separated paths (`bronze/events/_delta_log/00000000000000000000.json`).
 * They come from `lake/layout.ts` only, never from a request; every store refuses a key that is
 * empty, absolute, has an empty, `.` or `..` segment, or a control character.
 *
 * @module
 */

/** What a store knows of one object. */
export interface ObjectInfo {
  /** The object's key, relative to the store's root. */
  key: string;
  /** Size in bytes. */
  size: number;
  /** Last modification, ms since the epoch. */
  mtimeMs: number;
}

/** A byte range of {@link ObjectStore.get}: `length` bytes from `offset` (to the end without it). */
export interface ByteRange {
  offset: number;
  length?: number;
}

/** Options of {@link ObjectStore.list}. */
export interface ListOptions {
  /** Only keys after this one (exclusive), as S3's `start-after`. */
  startAfter?: string;
}

/** Thrown by a store whose root is gone or replaced: nothing is written, nothing recreated. */
export class StoreGoneError extends Error {
  override name = "StoreGoneError";
}

/** The lake's storage: local disk or an S3-compatible bucket. */
export interface ObjectStore {
  /** Where the store is, for logs and errors (`file:///…`, `s3://bucket/prefix`); no secrets. */
  readonly url: string;

  /** Writes a whole object, replacing any object of that key atomically; durable on return. */
  put(key: string, data: Uint8Array): Promise<void>;

  /**
   * Creates an object only if no object has that key; durable on return. Resolves `true` when
   * this call created it, `false` when the key was taken (by an earlier or a concurrent caller).
   */
  putIfAbsent(key: string, data: Uint8Array): Promise<boolean>;

  /** The object's bytes (or a range of them), or `undefined` when there is no such object. */
  get(key: string, range?: ByteRange): Promise<Uint8Array | undefined>;

  /** The object's size and time, or `undefined` when there is no such object. */
  head(key: string): Promise<ObjectInfo | undefined>;

  /** Every object whose key starts with `prefix`, in ascending key order (UTF-8 byte order). */
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo>;

  /** Deletes an object; deleting a missing one is not an error. */
  delete(key: string): Promise<void>;

  /**
   * A local file holding the object, for readers that open files themselves (DuckDB): the object
   * itself on disk, a cached copy for a remote store. Only for objects that never change once
   * written (data files and log entries); rejects with `Deno.errors.NotFound` for a missing one.
   */
  localFile(key: string): Promise<string>;

  /** Checks the store can be written and read now (a probe object), and how fast. */
  probe(): Promise<void>;

  /** Releases what the store holds (connections, cache handles). Safe to call twice. */
  close(): Promise<void>;
}

// Control characters: DuckDB-wasm cuts strings at NUL, and no key of the lake holds one.
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Throws unless `key` is a relative `/`-separated key without empty, `.` or `..` segments and
 * without control characters. Stores call it on every key they are given.
 */
export function checkKey(key: string): string {
  if (key === "" || key.startsWith("/") || CONTROL.test(key) || key.includes("\\")) {
    throw new Error(`Invalid storage key "${key}"`);
  }
  for (const seg of key.split("/")) {
    if (seg === "" || seg === "." || seg === "..") throw new Error(`Invalid storage key "${key}"`);
  }
  return key;
}

/** Throws unless `range` has a whole non-negative offset and length. */
export function checkRange(range: ByteRange, key: string): void {
  const { offset, length } = range;
  if (
    !Number.isSafeInteger(offset) || offset < 0 ||
    (length !== undefined && !(Number.isSafeInteger(length) && length >= 0))
  ) {
    throw new Error(`Invalid byte range ${JSON.stringify(range)} of object "${key}"`);
  }
}

/** Throws unless `prefix` is empty or a valid key, optionally ending with `/`. */
export function checkPrefix(prefix: string): string {
  if (prefix === "") return prefix;
  checkKey(prefix.endsWith("/") ? prefix.slice(0, -1) : prefix);
  return prefix;
}

/** A held lock; release it once (a second release does nothing). */
export interface Lock {
  release(): Promise<void>;
}

/**
 * A store that can also lock a key among the processes sharing it (local disk: an flock). Only
 * table protocols that predate put-if-absent commits use it; an object store offers no such step.
 */
export interface LockingStore extends ObjectStore {
  /** An exclusive lock on `key`; with `wait: false`, `undefined` when another holder has it. */
  lock(key: string, options?: { wait?: boolean }): Promise<Lock | undefined>;
}

/**
 * A store whose objects are files in local directories, so a reader may hand DuckDB a glob over a
 * whole directory instead of a list of its files (local disk).
 */
export interface DirectoryStore extends ObjectStore {
  /** The local directory of the objects whose keys start with `prefix/`. */
  localDir(prefix: string): string;
}

/** Whether `store` is a {@link DirectoryStore}. */
export function hasLocalDirs(store: ObjectStore): store is DirectoryStore {
  return typeof (store as Partial<DirectoryStore>).localDir === "function";
}
