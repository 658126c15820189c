/**
 * The contract every {@link ObjectStore} keeps (lake/storage/store.ts). {@link objectStoreContract}
 * registers the same `Deno.test` cases for any store, so the memory, disk and S3 stores cannot
 * drift apart: the lake's table code is tested on one and runs on another.
 *
 * Not in the contract: a key that is also a "directory" of others (`a/x` and `a/x/y` at once).
 * S3 allows it, but s3proxy's filesystem backends store keys as files and cannot, and the lake's
 * layout never needs it.
 *
 * jsr: is not reachable on these machines, so assertions use node:assert.
 *
 * @module
 */
import { registerContract } from "./contract.ts";
import assert from "node:assert/strict";
import type { ObjectInfo, ObjectStore } from "../lake/storage/store.ts";

/** What a contract test gets: a store of its own, and how to clean up after it. */
export interface ObjectStoreFixture {
  /** An empty store (a fresh one, or a fresh prefix of a shared bucket). */
  store: ObjectStore;
  /** Called after the test, pass or fail: deletes what the test wrote, closes the store. */
  cleanup: () => Promise<void>;
}

/** What the contract needs to know of the store under test. */
export interface ObjectStoreContractOptions {
  /** Keys per list page of the store: the paging case writes more than two pages. @default 5 */
  pageSize?: number;
  /** A size over the store's multipart threshold, for the large-object case. @default 1 MiB */
  largeSize?: number;
  /**
   * Whether the list order case includes a key above U+FFFF next to one in U+E000–U+FFFF, where
   * UTF-8 and UTF-16 order differ. S3 lists by UTF-8 bytes; s3proxy 4.0.0 by UTF-16 code units
   * (Java's String order), so its test turns this off. @default true
   */
  astralOrder?: boolean;
}

interface Context {
  store: ObjectStore;
  pageSize: number;
  largeSize: number;
  astralOrder: boolean;
}

/** Registers the contract tests for the stores `open()` makes, named `<name>: …`. */
export function objectStoreContract(
  name: string,
  open: () => Promise<ObjectStoreFixture>,
  options: ObjectStoreContractOptions = {},
): void {
  registerContract(name, CASES, open, (fixture) => ({
    store: fixture.store,
    pageSize: options.pageSize ?? 5,
    largeSize: options.largeSize ?? 1024 * 1024,
    astralOrder: options.astralOrder ?? true,
  }));
}

const text = (s: string) => new TextEncoder().encode(s);

/** `size` bytes that differ from position to position, so a misplaced part shows. */
function pattern(size: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

/** S3's order, computed independently of the stores' own comparator: UTF-8 bytes. */
function byUtf8(a: string, b: string): number {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

async function listAll(store: ObjectStore, prefix: string, startAfter?: string) {
  const out: ObjectInfo[] = [];
  const options = startAfter === undefined ? {} : { startAfter };
  for await (const info of store.list(prefix, options)) out.push(info);
  return out;
}

async function keys(store: ObjectStore, prefix: string, startAfter?: string): Promise<string[]> {
  return (await listAll(store, prefix, startAfter)).map((info) => info.key);
}

const INVALID_KEYS = [
  "",
  "/abs",
  "../x",
  "a/../b",
  "./x",
  "a/./b",
  "a//b",
  "a/",
  "a\u0000b",
  "a\nb",
  "a\u007fb",
  "a\\b",
];

const CASES: Record<string, (c: Context) => Promise<void>> = {
  "put() then get() returns the same bytes, and head() their size": async ({ store }) => {
    const data = pattern(1000);
    await store.put("t/a.bin", data);
    assert.deepEqual(await store.get("t/a.bin"), data);
    const info = await store.head("t/a.bin");
    assert.equal(info?.key, "t/a.bin");
    assert.equal(info?.size, 1000);
    assert.ok(
      Math.abs(info!.mtimeMs - Date.now()) < 5 * 60_000,
      `mtime ${info!.mtimeMs} is not now`,
    );
  },

  "put() keeps a copy: changing the caller's array afterwards changes nothing": async (
    { store },
  ) => {
    const data = text("original");
    await store.put("t/copy", data);
    data.fill(0);
    assert.deepEqual(await store.get("t/copy"), text("original"));
  },

  "put() of an empty object: get() gives 0 bytes, head() size 0": async ({ store }) => {
    await store.put("t/empty", new Uint8Array(0));
    assert.deepEqual(await store.get("t/empty"), new Uint8Array(0));
    assert.deepEqual(await store.get("t/empty", { offset: 0 }), new Uint8Array(0));
    assert.equal((await store.head("t/empty"))?.size, 0);
    assert.deepEqual(await Deno.readFile(await store.localFile("t/empty")), new Uint8Array(0));
  },

  "put() over an existing key replaces the whole object": async ({ store }) => {
    await store.put("t/over", text("a long first version"));
    await store.put("t/over", text("short"));
    assert.deepEqual(await store.get("t/over"), text("short"));
    assert.equal((await store.head("t/over"))?.size, 5);
  },

  "putIfAbsent() is true once, then false, and the first bytes stay": async ({ store }) => {
    assert.equal(await store.putIfAbsent("log/0.json", text("first")), true);
    assert.equal(await store.putIfAbsent("log/0.json", text("second")), false);
    assert.deepEqual(await store.get("log/0.json"), text("first"));
    await store.put("log/1.json", text("put"));
    assert.equal(await store.putIfAbsent("log/1.json", text("late")), false);
    assert.deepEqual(await store.get("log/1.json"), text("put"));
  },

  "putIfAbsent() from 20 concurrent callers: exactly one true, and its bytes are stored": async (
    { store },
  ) => {
    for (let round = 0; round < 3; round++) {
      const key = `log/race-${round}.json`;
      const bodies = Array.from({ length: 20 }, (_, i) => text(`writer ${i} of round ${round}`));
      const results = await Promise.all(bodies.map((b) => store.putIfAbsent(key, b)));
      const winners = results.flatMap((won, i) => won ? [i] : []);
      assert.equal(winners.length, 1, `round ${round}: winners ${JSON.stringify(winners)}`);
      assert.deepEqual(await store.get(key), bodies[winners[0]!]);
    }
  },

  "get() with a range returns that slice, cut at the end": async ({ store }) => {
    const data = pattern(100, 7);
    await store.put("t/range", data);
    assert.deepEqual(await store.get("t/range", { offset: 10 }), data.slice(10));
    assert.deepEqual(await store.get("t/range", { offset: 10, length: 5 }), data.slice(10, 15));
    assert.deepEqual(await store.get("t/range", { offset: 0, length: 1 }), data.slice(0, 1));
    assert.deepEqual(await store.get("t/range", { offset: 95, length: 10 }), data.slice(95));
    assert.deepEqual(await store.get("t/range", { offset: 99 }), data.slice(99));
    assert.deepEqual(await store.get("t/range", { offset: 100 }), new Uint8Array(0));
    assert.deepEqual(await store.get("t/range", { offset: 150, length: 3 }), new Uint8Array(0));
    assert.deepEqual(await store.get("t/range", { offset: 3, length: 0 }), new Uint8Array(0));
    assert.equal(await store.get("t/none", { offset: 3, length: 2 }), undefined);
    await assert.rejects(() => store.get("t/range", { offset: -1 }));
    await assert.rejects(() => store.get("t/range", { offset: 1.5 }));
  },

  "get(), head() and localFile() of a missing key: undefined, undefined, NotFound": async (
    { store },
  ) => {
    assert.equal(await store.get("missing/key"), undefined);
    assert.equal(await store.head("missing/key"), undefined);
    await assert.rejects(() => store.localFile("missing/key.parquet"), Deno.errors.NotFound);
  },

  "list() yields the keys under a prefix in ascending UTF-8 byte order": async (
    { store, astralOrder },
  ) => {
    const inside = [
      "a/z",
      "a/x",
      "a/é",
      ...(astralOrder ? ["a/\uFFFD"] : []),
      "a/😀",
      "a/ space",
      "a/+plus",
      "a/%25",
      "a/xy/deeper",
      "a/Y",
    ];
    const outside = ["a-", "a0", "b", "ab/x", "_a/x"];
    await Promise.all([...inside, ...outside].map((k) => store.put(k, text(k))));
    assert.deepEqual(await keys(store, "a/"), [...inside].sort(byUtf8));
    assert.deepEqual(await keys(store, ""), [...inside, ...outside].sort(byUtf8));
    assert.deepEqual(await keys(store, "a/x"), ["a/x", "a/xy/deeper"]);
    assert.deepEqual(await keys(store, "nothing/"), []);
    const infos = await listAll(store, "a/x");
    assert.equal(infos[1]?.size, "a/xy/deeper".length);
  },

  "list() with startAfter yields only the keys after it": async ({ store }) => {
    const all = Array.from({ length: 10 }, (_, i) => `p/k${i}`);
    await Promise.all(all.map((k) => store.put(k, text(k))));
    assert.deepEqual(await keys(store, "p/", "p/k4"), all.slice(5));
    assert.deepEqual(await keys(store, "p/", "p/k4x"), all.slice(5));
    assert.deepEqual(await keys(store, "p/", "a"), all);
    assert.deepEqual(await keys(store, "p/", "p/k9"), []);
    assert.deepEqual(await keys(store, "p/", "q"), []);
  },

  "list() goes through more than two pages in order": async ({ store, pageSize }) => {
    const all = Array.from(
      { length: pageSize * 2 + 3 },
      (_, i) => `pages/${String(i).padStart(4, "0")}`,
    );
    await Promise.all(all.map((k) => store.put(k, text(k))));
    assert.deepEqual(await keys(store, "pages/"), all);
    assert.deepEqual(await keys(store, "pages/", all[pageSize]), all.slice(pageSize + 1));
  },

  "put(), get() and list() keep keys with URL and XML special characters": async ({ store }) => {
    const special = [
      "dt=2024-01-01 00:00/type=a b+c%25d/part-0.parquet",
      "q/x?y#z&w=v;p,c",
      "q/<tag>&amp;\"'",
      "q/ünïcødé/日本語",
      "q/it's (1)!*~@$",
      "q/tab-free but spaces  ",
    ];
    for (const key of special) await store.put(key, text(key));
    for (const key of special) assert.deepEqual(await store.get(key), text(key), key);
    assert.deepEqual(await keys(store, ""), [...special].sort(byUtf8));
    assert.equal((await store.head(special[0]!))?.size, text(special[0]!).length);
  },

  "delete() removes an object and is idempotent": async ({ store }) => {
    await store.put("d/x", text("x"));
    await store.put("d/y", text("y"));
    await store.delete("d/x");
    assert.equal(await store.get("d/x"), undefined);
    assert.equal(await store.head("d/x"), undefined);
    await store.delete("d/x");
    await store.delete("d/never-was");
    assert.deepEqual(await keys(store, "d/"), ["d/y"]);
    assert.equal(await store.putIfAbsent("d/x", text("again")), true);
  },

  "every method rejects an invalid key": async ({ store }) => {
    for (const key of INVALID_KEYS) {
      const name = JSON.stringify(key);
      await assert.rejects(() => store.put(key, text("x")), /Invalid storage key/, `put ${name}`);
      await assert.rejects(
        () => store.putIfAbsent(key, text("x")),
        /Invalid/,
        `putIfAbsent ${name}`,
      );
      await assert.rejects(() => store.get(key), /Invalid storage key/, `get ${name}`);
      await assert.rejects(() => store.head(key), /Invalid storage key/, `head ${name}`);
      await assert.rejects(() => store.delete(key), /Invalid storage key/, `delete ${name}`);
      await assert.rejects(() => store.localFile(key), /Invalid storage key/, `localFile ${name}`);
    }
    for (const prefix of ["/abs/", "../", "a//", "a/../", "a\u0001/"]) {
      await assert.rejects(() => keys(store, prefix), /Invalid storage key/, `list ${prefix}`);
    }
    assert.deepEqual(await keys(store, ""), [], "nothing was written");
  },

  "put() of an object over the multipart threshold round-trips": async ({ store, largeSize }) => {
    const data = pattern(largeSize, 3);
    await store.put("big/object.bin", data);
    assert.equal((await store.head("big/object.bin"))?.size, largeSize);
    const back = await store.get("big/object.bin");
    assert.ok(back && back.length === data.length, `got ${back?.length} bytes`);
    assert.ok(back.every((v, i) => v === data[i]), "the bytes differ");
    const tail = await store.get("big/object.bin", { offset: largeSize - 10 });
    assert.deepEqual(tail, data.slice(largeSize - 10));
    const file = await Deno.readFile(await store.localFile("big/object.bin"));
    assert.ok(file.length === data.length && file.every((v, i) => v === data[i]));
  },

  "localFile() is a file holding the object's bytes, also when asked concurrently": async (
    { store },
  ) => {
    const data = pattern(4096, 5);
    await store.put("files/part-0.parquet", data);
    const paths = await Promise.all(
      Array.from({ length: 5 }, () => store.localFile("files/part-0.parquet")),
    );
    for (const path of paths) assert.deepEqual(await Deno.readFile(path), data);
    assert.deepEqual(await Deno.readFile(await store.localFile("files/part-0.parquet")), data);
  },

  "probe() resolves and leaves no object behind": async ({ store }) => {
    await store.probe();
    await store.probe();
    assert.deepEqual(await keys(store, ""), []);
  },

  "close() is safe twice, and a closed store rejects calls": async ({ store }) => {
    await store.put("c/x", text("x"));
    await store.close();
    await store.close();
    await assert.rejects(() => store.get("c/x"), /closed/);
  },
};
