/**
 * The lake on a local (or mounted) file system: {@link ObjectStore} over a directory.
 *
 * Durability as a database would do it: an object is written to a temporary name, fsynced, then
 * renamed (put) or hard-linked (put-if-absent, which fails if the name exists: an exclusive create
 * of complete content) into place, and the directory is fsynced.
 *
 * The root is created once, when the store opens, and remembered by device and inode. After that
 * no code path creates it again: directories below it are made one component at a time without
 * `recursive`, so a root that vanished (an unmounted volume, a moved directory) makes the write
 * fail instead of a new, empty lake quietly taking the batches whose offsets would then be
 * committed while the real lake never got them. A root replaced by another directory is refused
 * the same way ({@link LocalStore.check}).
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { removeIfExists, syncDir, writeAll } from "../../shared/fs.ts";
import { compareKeys } from "./key_order.ts";
import {
  type ByteRange,
  checkKey,
  checkPrefix,
  checkRange,
  type DirectoryStore,
  type ListOptions,
  type Lock,
  type LockingStore,
  type ObjectInfo,
  StoreGoneError,
} from "./store.ts";

/** Temporary files of puts in progress: never listed, never a key (keys never start with "."). */
const TEMP = /^\..*\.tmp$/;

/** The lake in a directory. */
export class LocalStore implements LockingStore, DirectoryStore {
  readonly url: string;
  /** The root directory, absolute. */
  readonly root: string;
  readonly #dev: number;
  readonly #ino: number | null;
  #closed = false;

  private constructor(root: string, dev: number, ino: number | null) {
    this.root = root;
    this.url = pathToFileURL(root).href;
    this.#dev = dev;
    this.#ino = ino;
  }

  /**
   * Creates `dir` if needed (the only time the root is ever created) and opens it; with
   * `create: false` a missing `dir` rejects with `Deno.errors.NotFound` (readers of a lake).
   */
  static async open(
    dir: string,
    { create = true }: { create?: boolean } = {},
  ): Promise<LocalStore> {
    const root = resolve(dir);
    if (create) await Deno.mkdir(root, { recursive: true });
    const st = await Deno.stat(root);
    return new LocalStore(root, st.dev, st.ino);
  }

  /** Throws {@link StoreGoneError} unless the root is still the directory it was at open. */
  async check(): Promise<void> {
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(this.root);
    } catch (err) {
      throw new StoreGoneError(
        `LAKE_DIR ${this.root} is gone (${(err as Error).message}); not writing, and not ` +
          `recreating it: bring it back (mount the volume) or restart with a new one`,
      );
    }
    if (!st.isDirectory || st.dev !== this.#dev || st.ino !== this.#ino) {
      throw new StoreGoneError(
        `LAKE_DIR ${this.root} is not the directory it was at start (${
          st.isDirectory ? "another directory" : "not a directory"
        }); not writing: bring the old one back, or restart to use this one`,
      );
    }
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    const path = await this.#prepare(key);
    const tmp = await this.#writeTemp(path, data);
    try {
      await Deno.rename(tmp, path);
    } catch (err) {
      await removeIfExists(tmp);
      throw err;
    }
    await syncDir(dirname(path));
  }

  async putIfAbsent(key: string, data: Uint8Array): Promise<boolean> {
    const path = await this.#prepare(key);
    const tmp = await this.#writeTemp(path, data);
    try {
      // link() fails if the name exists: an exclusive create whose content is already complete,
      // so no reader ever sees a half-written object under `key`.
      await Deno.link(tmp, path);
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) return false;
      throw err;
    } finally {
      await removeIfExists(tmp);
    }
    await syncDir(dirname(path));
    return true;
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array | undefined> {
    const path = this.#path(key);
    if (range) checkRange(range, key);
    try {
      if (!range) return await Deno.readFile(path);
      using f = await Deno.open(path, { read: true });
      const size = (await f.stat()).size;
      const start = Math.min(range.offset, size);
      const end = range.length === undefined ? size : Math.min(size, start + range.length);
      const out = new Uint8Array(end - start);
      await f.seek(start, Deno.SeekMode.Start);
      for (let at = 0; at < out.length;) {
        const n = await f.read(out.subarray(at));
        if (n === null) break;
        at += n;
      }
      return out;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await Deno.stat(this.#path(key));
      return st.isFile ? { key, size: st.size, mtimeMs: st.mtime?.getTime() ?? 0 } : undefined;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    if (this.#closed) throw new Error(`Cannot use ${this.url}: the store is closed`);
    // The deepest directory the prefix names, then every file below it whose key matches.
    const cut = prefix.lastIndexOf("/");
    const base = cut < 0 ? "" : prefix.slice(0, cut);
    for await (const info of this.#walk(base)) {
      if (!info.key.startsWith(prefix)) continue;
      if (options.startAfter !== undefined && info.key <= options.startAfter) continue;
      yield info;
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.#path(key);
    try {
      await Deno.remove(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    await syncDir(dirname(path)).catch(() => {});
  }

  async localFile(key: string): Promise<string> {
    const path = this.#path(key);
    if (!(await Deno.stat(path)).isFile) throw new Deno.errors.NotFound(`No object "${key}"`);
    return path;
  }

  localDir(prefix: string): string {
    return prefix === "" ? this.root : this.#path(prefix);
  }

  /**
   * Deletes the temporary files of puts that a crash cut short below `prefix` (a key prefix ending
   * at a directory), if last modified before `cutoffMs`; returns how many. A live put holds its
   * temporary file for moments, so a cutoff an hour back never takes one in progress.
   */
  async sweepTemp(prefix: string, cutoffMs: number): Promise<number> {
    checkPrefix(prefix);
    let n = 0;
    const sweep = async (dir: string): Promise<void> => {
      for (const e of await entriesOf(dir)) {
        const path = join(dir, e.name);
        if (e.isDirectory) await sweep(path);
        else if (e.isFile && TEMP.test(e.name)) {
          const st = await Deno.stat(path).catch(() => undefined);
          if (st && (st.mtime?.getTime() ?? 0) < cutoffMs) {
            await removeIfExists(path);
            n++;
          }
        }
      }
    };
    await sweep(prefix === "" ? this.root : this.#path(prefix.replace(/\/$/, "")));
    return n;
  }

  /** Writes, fsyncs, renames and removes a probe object: the steps every write takes. */
  async probe(): Promise<void> {
    const key = `_probe/${crypto.randomUUID()}`;
    try {
      await this.put(key, new TextEncoder().encode("probe"));
    } finally {
      await this.delete(key).catch(() => {});
    }
  }

  /** An flock on the file `key` (see {@link LockingStore.lock}). */
  async lock(key: string, { wait = true }: { wait?: boolean } = {}): Promise<Lock | undefined> {
    const path = await this.#prepare(key);
    const file = await Deno.open(path, { create: true, write: true });
    try {
      if (wait) await file.lock(true);
      else if (!(await file.tryLock(true))) {
        file.close();
        return undefined;
      }
    } catch (err) {
      file.close();
      throw err;
    }
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        try {
          await file.unlock();
        } finally {
          file.close();
        }
      },
    };
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #path(key: string): string {
    if (this.#closed) throw new Error(`Cannot use ${this.url}: the store is closed`);
    return join(this.root, checkKey(key));
  }

  /** Checks the root, then makes the key's parent directories below it, one at a time. */
  async #prepare(key: string): Promise<string> {
    const path = this.#path(key);
    await this.check();
    const parts = key.split("/").slice(0, -1);
    let dir = this.root;
    for (const part of parts) {
      dir = join(dir, part);
      try {
        await Deno.mkdir(dir);
      } catch (err) {
        if (err instanceof Deno.errors.AlreadyExists) continue;
        // The parent vanished between the check and here: the root is gone, never recreate it.
        if (err instanceof Deno.errors.NotFound) await this.check();
        throw err;
      }
      await syncDir(dirname(dir));
    }
    return path;
  }

  async #writeTemp(path: string, data: Uint8Array): Promise<string> {
    const tmp = join(dirname(path), `.${crypto.randomUUID()}.tmp`);
    try {
      using f = await Deno.open(tmp, { write: true, createNew: true });
      await writeAll(f, data);
      await f.sync();
    } catch (err) {
      await removeIfExists(tmp);
      throw err;
    }
    return tmp;
  }

  /** Files below `base` (a key prefix ending at a directory), in ascending key order. */
  async *#walk(base: string): AsyncGenerator<ObjectInfo> {
    const dir = base === "" ? this.root : this.#path(base);
    const entries = await entriesOf(dir);
    // Key order is byte order of the whole key: a directory "a" sorts as "a/…", after "a.x".
    const named = entries.map((e) => ({ e, sortKey: e.isDirectory ? `${e.name}/` : e.name }));
    named.sort((a, b) => compareKeys(a.sortKey, b.sortKey));
    for (const { e } of named) {
      const key = base === "" ? e.name : `${base}/${e.name}`;
      if (e.isDirectory) yield* this.#walk(key);
      else if (e.isFile && !TEMP.test(e.name)) {
        try {
          const st = await Deno.stat(join(dir, e.name));
          yield { key, size: st.size, mtimeMs: st.mtime?.getTime() ?? 0 };
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err; // deleted meanwhile
        }
      }
    }
  }
}

/** The entries of directory `dir`; none where it is missing or not a directory. */
async function entriesOf(dir: string): Promise<Deno.DirEntry[]> {
  try {
    return await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) return [];
    throw err;
  }
}
