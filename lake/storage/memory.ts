/**
 * {@link MemoryStore}: an {@link ObjectStore} in a `Map`, for fast unit tests of table code. It
 * keeps the same contract as the disk and S3 stores (`tests/object_store_contract.ts`): copies in
 * and out, `putIfAbsent` decided atomically, keys listed in UTF-8 byte order. `localFile()`
 * writes copies to a temporary directory that `close()` deletes.
 *
 * @module
 */
import { compareKeys } from "./key_order.ts";
import {
  type ByteRange,
  checkKey,
  checkPrefix,
  checkRange,
  type ListOptions,
  type ObjectInfo,
  type ObjectStore,
} from "./store.ts";

interface Stored {
  data: Uint8Array;
  mtimeMs: number;
}

/** See the module documentation. */
export class MemoryStore implements ObjectStore {
  readonly url: string;
  #objects = new Map<string, Stored>();
  /** Copies written by `localFile()`, by key; dropped when the key is written or deleted. */
  #files = new Map<string, string>();
  #dir: Promise<string> | undefined;
  #closed = false;

  constructor(name = crypto.randomUUID()) {
    this.url = `memory://${name}`;
  }

  put(key: string, data: Uint8Array): Promise<void> {
    return this.#run(key, () => {
      this.#objects.set(key, { data: data.slice(), mtimeMs: Date.now() });
      this.#files.delete(key);
    });
  }

  putIfAbsent(key: string, data: Uint8Array): Promise<boolean> {
    // Check and set in one synchronous step: no other caller runs in between.
    return this.#run(key, () => {
      if (this.#objects.has(key)) return false;
      this.#objects.set(key, { data: data.slice(), mtimeMs: Date.now() });
      return true;
    });
  }

  get(key: string, range?: ByteRange): Promise<Uint8Array | undefined> {
    return this.#run(key, () => {
      const stored = this.#objects.get(key);
      if (!stored || !range) return stored?.data.slice();
      checkRange(range, key);
      const { offset, length } = range;
      return stored.data.slice(offset, length === undefined ? undefined : offset + length);
    });
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.#run(key, () => {
      const stored = this.#objects.get(key);
      return stored && { key, size: stored.data.length, mtimeMs: stored.mtimeMs };
    });
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    this.#check();
    const { startAfter } = options;
    const keys = [...this.#objects.keys()]
      .filter((k) =>
        k.startsWith(prefix) && (startAfter === undefined || compareKeys(k, startAfter) > 0)
      )
      .sort(compareKeys);
    for (const key of keys) {
      const stored = this.#objects.get(key);
      if (stored) yield { key, size: stored.data.length, mtimeMs: stored.mtimeMs };
    }
  }

  delete(key: string): Promise<void> {
    return this.#run(key, () => {
      this.#objects.delete(key);
      this.#files.delete(key);
    });
  }

  async localFile(key: string): Promise<string> {
    this.#check(key);
    const known = this.#files.get(key);
    if (known) return known;
    const stored = this.#objects.get(key);
    if (!stored) throw new Deno.errors.NotFound(`No object "${key}" in ${this.url}`);
    this.#dir ??= Deno.makeTempDir({ prefix: "streamgate-memory-store-" });
    const ext = /\.[A-Za-z0-9]{1,12}$/.exec(key)?.[0] ?? "";
    const path = `${await this.#dir}/${crypto.randomUUID()}${ext}`;
    await Deno.writeFile(path, stored.data);
    this.#files.set(key, path);
    return path;
  }

  probe(): Promise<void> {
    return this.#run(undefined, () => {});
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#objects.clear();
    this.#files.clear();
    if (this.#dir) await Deno.remove(await this.#dir, { recursive: true }).catch(() => {});
  }

  #check(key?: string): void {
    if (key !== undefined) checkKey(key);
    if (this.#closed) throw new Error(`Cannot use ${this.url}: the store is closed`);
  }

  /** `fn()` after the key and store checks, as a promise that rejects rather than throws. */
  #run<T>(key: string | undefined, fn: () => T): Promise<T> {
    try {
      this.#check(key);
      return Promise.resolve(fn());
    } catch (error) {
      return Promise.reject(error);
    }
  }
}
