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
 *   For the same reason the cache starts empty: the first use deletes earlier copies (its own
 *   `objects/` subdirectory only), which could be of objects since deleted and written again.
 *
 * @module
 */
import { checkKey } from "./store.ts";

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

/** The subdirectory of the cache's copies: only the cache writes there, and empties it at start. */
const OBJECTS = "objects";

/** Writes an object's bytes to `tmpPath`; resolves `false` when there is no such object. */
export type Fill = (tmpPath: string) => Promise<boolean>;

/** See the module documentation. */
export class DiskCache {
  readonly maxBytes: number;
  readonly graceMs: number;
  #dirOption: string | undefined;
  #dir: Promise<string> | undefined;
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
    if (dir && this.#dirOption === undefined) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    } else {
      await Promise.all([...this.#entries.values()].map((e) => removeQuietly(e.path)));
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
        await removeQuietly(tmp);
        return undefined;
      }
      await Deno.rename(tmp, path);
    } catch (error) {
      await removeQuietly(tmp);
      throw error;
    }
    const { size } = await Deno.stat(path);
    if (this.#closed) {
      await removeQuietly(path);
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
    await Promise.all(victims.map((e) => removeQuietly(e.path)));
  }

  /** The directory, made (or emptied of earlier copies) once. */
  #ready(): Promise<string> {
    this.#dir ??= (async () => {
      if (this.#dirOption === undefined) {
        return await Deno.makeTempDir({ prefix: "streamgate-object-cache-" });
      }
      const dir = this.#dirOption;
      try {
        await Deno.mkdir(dir, { recursive: true });
        await Deno.remove(`${dir}/${OBJECTS}`, { recursive: true }).catch((error) => {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        });
      } catch (error) {
        throw new Error(`Cannot prepare the object cache directory "${dir}"`, { cause: error });
      }
      return dir;
    })();
    // A failure (a missing mount, say) is not kept: the next call tries again.
    this.#dir.catch(() => this.#dir = undefined);
    return this.#dir;
  }
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
