import assert from "node:assert/strict";
import { objectStoreContract } from "../../tests/object_store_contract.ts";
import { compareKeys } from "./key_order.ts";
import { MemoryStore } from "./memory.ts";

objectStoreContract("MemoryStore", () => {
  const store = new MemoryStore();
  return Promise.resolve({ store, cleanup: () => store.close() });
});

Deno.test("MemoryStore.close() deletes the files localFile() wrote", async () => {
  const store = new MemoryStore();
  await store.put("a.parquet", new Uint8Array([1, 2, 3]));
  const path = await store.localFile("a.parquet");
  assert.ok(path.endsWith(".parquet"));
  await store.close();
  await assert.rejects(() => Deno.stat(path), Deno.errors.NotFound);
});

Deno.test("MemoryStore.localFile() gives a new file after the key is written again", async () => {
  const store = new MemoryStore();
  try {
    await store.put("k", new Uint8Array([1]));
    const first = await store.localFile("k");
    await store.put("k", new Uint8Array([2]));
    assert.deepEqual(await Deno.readFile(await store.localFile("k")), new Uint8Array([2]));
    assert.deepEqual(await Deno.readFile(first), new Uint8Array([1]));
  } finally {
    await store.close();
  }
});

Deno.test("compareKeys() orders by UTF-8 bytes, not UTF-16 code units", () => {
  const keys = ["b", "a", "ab", "a/", "\uFFFD", "😀", "é", "~", "a b"];
  const utf8 = (a: string, b: string) => {
    const [x, y] = [new TextEncoder().encode(a), new TextEncoder().encode(b)];
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
    return x.length - y.length;
  };
  assert.deepEqual([...keys].sort(compareKeys), [...keys].sort(utf8));
  assert.ok(compareKeys("\uFFFD", "😀") < 0, "U+FFFD before U+1F600");
  assert.ok("\uFFFD" > "😀", "which JavaScript's < gets the other way round");
  assert.equal(compareKeys("same😀", "same😀"), 0);
});
