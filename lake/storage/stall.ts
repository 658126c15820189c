/**
 * A test hook, never set in production: `LAKE_TEST_STALL` makes the lake's store stop for good at
 * one point of the bronze writer's work, after saying so, so that a fault test can SIGKILL the
 * process exactly there (`tests/delta_faults_test.ts`), on disk and on S3 alike:
 * - `upload`: the second bronze data file put never completes (the first one is stored, no
 *   commit names it): a kill during an upload;
 * - `commit`: a bronze log entry (`_delta_log/<version>.json`) is created, and the writer never
 *   learns it: a kill after the commit is durable and before the log offset is committed.
 *
 * @module
 */
import type { ByteRange, ListOptions, ObjectInfo, ObjectStore } from "./store.ts";

/** What the process logs when the store stalls (tests wait for it). */
export const STALLED = "Test hook: the lake store stalls here (LAKE_TEST_STALL)";

/** Where {@link StallingStore} stops. */
export type StallPoint = "upload" | "commit";

const BRONZE_FILE = /^bronze\/events\/dt=[^/]+\/type=[^/]+\/[^/]+\.parquet$/;
const BRONZE_COMMIT = /^bronze\/events\/_delta_log\/\d{20}\.json$/;

/** Passes everything to `store`, but stops for good at `point` after calling `onStall`. */
export class StallingStore implements ObjectStore {
  readonly #store: ObjectStore;
  readonly #point: StallPoint;
  readonly #onStall: (key: string) => void;
  #uploads = 0;

  constructor(store: ObjectStore, point: StallPoint, onStall: (key: string) => void) {
    this.#store = store;
    this.#point = point;
    this.#onStall = onStall;
  }

  get url(): string {
    return this.#store.url;
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    if (this.#point === "upload" && BRONZE_FILE.test(key) && ++this.#uploads === 2) {
      return await this.#stall(key);
    }
    return await this.#store.put(key, data);
  }

  async putIfAbsent(key: string, data: Uint8Array): Promise<boolean> {
    const created = await this.#store.putIfAbsent(key, data);
    if (created && this.#point === "commit" && BRONZE_COMMIT.test(key)) await this.#stall(key);
    return created;
  }

  get(key: string, range?: ByteRange): Promise<Uint8Array | undefined> {
    return this.#store.get(key, range);
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.#store.head(key);
  }

  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
    return this.#store.list(prefix, options);
  }

  delete(key: string): Promise<void> {
    return this.#store.delete(key);
  }

  localFile(key: string): Promise<string> {
    return this.#store.localFile(key);
  }

  probe(): Promise<void> {
    return this.#store.probe();
  }

  close(): Promise<void> {
    return this.#store.close();
  }

  #stall(key: string): Promise<never> {
    this.#onStall(key);
    return new Promise<never>(() => {});
  }
}
