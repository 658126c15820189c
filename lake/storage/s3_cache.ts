/**
 * A bounded on-disk cache of immutable remote objects, for {@link ../storage/s3.ts}'s
 * `localFile()`: readers that open files themselves (DuckDB) get a local copy.
 *
 * - A copy is written under a temporary name and renamed into place, so a path handed out always
 *   holds a whole object.
 * - Concurrent requests for one object share one download.
 * - Beyond `maxBytes` the least recently used copies are deleted. A copy handed out during the
 *   last `graceMs` is not, so a reader that just got a path can still open it; the cache may
 *   exceed its bound by what was handed out in that window. (A file already open stays readable
 *   after it is deleted.)
 * - Only objects that never change once written may be cached: a copy is never revalidated.
 *   For the same reason the cache starts empty.
 * - Processes may share one directory (`LAKE_CACHE_DIR` of several workers on one host): each
 *   keeps its copies in a subdirectory of its own, `proc-<id>/`, and holds an exclusive lock on
 *   `proc-<id>.lock` while it lives. The first use deletes the subdirectories of processes that
 *   are gone (their lock is free), never another live process's copies.
 *
 * @module
 */
import { checkKey } from "./store.ts";
import { removeIfExists } from "../../shared/fs.ts";

/** Options of {@link DiskCache}. */
export interface DiskCacheOptions {
  /** Directory of the copies; one cache per directory. @default a new temporary directory */
  dir?: string | undefined;
  /** Total bytes of the copies kept. */
  maxBytes: number;
  /** A copy handed out this recently (ms) is not evicted. @default 10_000 */
  graceMs?: number | undefined;
}

interface Entry {
  path: string;
  size: number;
  usedAt: number;
}

/** The subdirectory of the copies, below the process's own directory. */
const OBJECTS = "objects";
/** A process's own directory (and, with `.lock`, its lock file) in a shared cache directory. */
const PROC = /^proc-[0-9a-f-]{36}$/;
/** A process directory or lock file younger than this (ms) is never swept. */
const YOUNG_MS = 60_000;

/** Writes an object's bytes to `tmpPath`; resolves `false` when there is no such object. */
export type Fill = (tmpPath: string) => Promise<boolean>;

/** See the module documentation. */
export class DiskCache {
  readonly maxBytes: number;
  readonly graceMs: number;
  #dirOption: string | undefined;
  #dir: Promise<string> | undefined;
  /** The lock file held while this cache lives in a shared directory. */
  #lock: Deno.FsFile | undefined;
  /** Least recently used first (a Map iterates in insertion order; a hit re-inserts). */
  #entries = new Map<string, Entry>();
  #loading = new Map<string, Promise<string | undefined>>();
  #bytes = 0;
  #closed = false;

  constructor(options: DiskCacheOptions) {
    if (!(options.maxBytes >= 0)) throw new Error(`Invalid cache size ${options.maxBytes}`);
    this.maxBytes = options.maxBytes;
    this.graceMs = options.graceMs ?? 10_000;
    this.#dirOption = options.dir;
  }

  /** Bytes of the copies on disk now. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * The path of a local copy of object `id`; `fill` fetches it when there is none. `undefined`
   * when `fill` finds no object. The copy lies at `relPath` below the cache directory (a checked
   * object key: readers that take partition values from a path, such as DuckDB's hive
   * partitioning, see the same `dt=…/type=…` directories as on disk).
   */
  async file(id: string, relPath: string, fill: Fill): Promise<string | undefined> {
    if (this.#closed) throw new Error("Cannot use a closed object cache");
    const hit = this.#entries.get(id);
    if (hit) {
      this.#entries.delete(id);
      this.#entries.set(id, hit);
      hit.usedAt = Date.now();
      return hit.path;
    }
    let loading = this.#loading.get(id);
    if (!loading) {
      loading = this.#load(id, relPath, fill).finally(() => this.#loading.delete(id));
      this.#loading.set(id, loading);
    }
    return await loading;
  }

  /** Deletes every copy (and the directory when the cache made it). Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled(this.#loading.values());
    const dir = this.#dir ? await this.#dir.catch(() => undefined) : undefined;
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    if (this.#lock) {
      await removeIfExists(`${dir}.lock`).catch(() => {});
      this.#lock.close();
      this.#lock = undefined;
    }
    this.#entries.clear();
    this.#bytes = 0;
  }

  async #load(id: string, relPath: string, fill: Fill): Promise<string | undefined> {
    const dir = await this.#ready();
    const path = `${dir}/${OBJECTS}/${checkKey(relPath)}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    const tmp = `${path}.${crypto.randomUUID()}.tmp`;
    try {
      if (!(await fill(tmp))) {
        await removeIfExists(tmp);
        return undefined;
      }
      await Deno.rename(tmp, path);
    } catch (error) {
      await removeIfExists(tmp);
      throw error;
    }
    const { size } = await Deno.stat(path);
    if (this.#closed) {
      await removeIfExists(path);
      throw new Error("Cannot use a closed object cache");
    }
    this.#entries.set(id, { path, size, usedAt: Date.now() });
    this.#bytes += size;
    await this.#evict(id);
    return path;
  }

  /** Deletes least recently used copies until the total fits, sparing `keep` and recent ones. */
  async #evict(keep: string): Promise<void> {
    const spare = Date.now() - this.graceMs;
    const victims: Entry[] = [];
    for (const [id, entry] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break;
      if (id === keep || entry.usedAt > spare) continue;
      this.#entries.delete(id);
      this.#bytes -= entry.size;
      victims.push(entry);
    }
    await Promise.all(victims.map((e) => removeIfExists(e.path)));
  }

  /** The directory, made (or emptied of earlier copies) once. */
  #ready(): Promise<string> {
    this.#dir ??= (async () => {
      if (this.#dirOption === undefined) {
        return await Deno.makeTempDir({ prefix: "streamgate-object-cache-" });
      }
      const dir = this.#dirOption;
      const own = `${dir}/proc-${crypto.randomUUID()}`;
      try {
        await Deno.mkdir(dir, { recursive: true });
        // Locked before the directory exists: a directory without a held lock is a dead one's.
        const lock = await Deno.open(`${own}.lock`, { create: true, write: true });
        await lock.lock(true);
        this.#lock = lock;
        await Deno.mkdir(own);
        await sweepDeadProcesses(dir, own);
      } catch (error) {
        throw new Error(`Cannot prepare the object cache directory "${dir}"`, { cause: error });
      }
      return own;
    })();
    // A failure (a missing mount, say) is not kept: the next call tries again.
    this.#dir.catch(() => this.#dir = undefined);
    return this.#dir;
  }
}

/** Deletes the directories (and lock files) of processes that no longer hold their lock. */
async function sweepDeadProcesses(dir: string, own: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    const name = e.name.replace(/\.lock$/, "");
    const path = `${dir}/${name}`;
    if (!PROC.test(name) || path === own || (e.isFile && e.name === name)) continue;
    if (e.isDirectory) {
      // Its lock file comes with the lock entry below, if there is one. Another process sweeping
      // at the same time may have removed it since the listing.
      await ignoreNotFound(async () => {
        const young = Date.now() - ((await Deno.stat(path)).mtime?.getTime() ?? 0) < YOUNG_MS;
        if (!young && !(await exists(`${path}.lock`))) await Deno.remove(path, { recursive: true });
      });
      continue;
    }
    const lock = await Deno.open(`${path}.lock`, { write: true }).catch(() => undefined);
    if (!lock) continue;
    try {
      // A lock file this young may be one a starting process has made and not yet locked.
      if (Date.now() - ((await lock.stat()).mtime?.getTime() ?? 0) < YOUNG_MS) continue;
      if (!(await lock.tryLock(true))) continue; // alive
      await removeIfExists(path);
      await removeIfExists(`${path}.lock`);
    } finally {
      lock.close();
    }
  }
}

/** Runs `fn`; a file that vanished on the way (NotFound) is not an error. */
async function ignoreNotFound(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
