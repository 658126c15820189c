import assert from "node:assert/strict";
import { type BronzeRow, BronzeWriter } from "../bronze.ts";
import { LakeJobs } from "../jobs.ts";
import { Lake } from "../lake.ts";
import { withLake } from "../engine/testing.ts";
import { createLogger } from "../../shared/logger.ts";
import { readBronze, testEvent } from "../../tests/lake_helpers.ts";
import { LocalStore } from "./local.ts";
import { probeStore } from "./probe.ts";
import { StoreGoneError } from "./store.ts";
import { objectStoreContract } from "../../tests/object_store_contract.ts";

objectStoreContract("LocalStore", async () => {
  const dir = await Deno.makeTempDir({ prefix: "local_store_contract_" });
  return {
    store: await LocalStore.open(dir),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
});

const rows = (from: number, to: number): BronzeRow[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ offset: from + i, event: testEvent() }));

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

Deno.test("LocalStore.check() passes for the directory of the start, and names a lake gone or replaced", async () => {
  await withLake("local_store_test_", async (lake) => {
    const root = await LocalStore.open(lake);
    await root.check();
    await Deno.rename(lake, `${lake}.away`);
    await assert.rejects(
      root.check(),
      (e: Error) => e instanceof StoreGoneError && /is gone/.test(e.message),
    );
    await Deno.writeTextFile(lake, "a file");
    await assert.rejects(root.check(), /not a directory/);
    await Deno.remove(lake);
    await Deno.mkdir(lake);
    await assert.rejects(root.check(), /another directory/);
    await Deno.remove(lake);
    await Deno.rename(`${lake}.away`, lake);
    await root.check();
  });
});

Deno.test("a lake that vanished is not recreated: bronze writes, the disk probe and jobs fail until it is back", async () => {
  await withLake("local_store_test_", async (lake, engine, store) => {
    const lakeTables = new Lake(store, engine);
    const writer = new BronzeWriter(engine, lakeTables.bronze);
    const jobs = new LakeJobs(engine, lakeTables, createLogger({ write: () => {} }));
    await writer.write({
      topic: "t",
      partition: 0,
      firstOffset: 0,
      lastOffset: 9,
      rows: rows(0, 9),
    });

    await Deno.rename(lake, `${lake}.away`); // an unmounted volume
    await assert.rejects(
      writer.write({
        topic: "t",
        partition: 0,
        firstOffset: 10,
        lastOffset: 19,
        rows: rows(10, 19),
      }),
      StoreGoneError,
    );
    const probe = await probeStore(store);
    assert.equal(probe.state, "down");
    assert.match(probe.detail ?? "", /LAKE_DIR .* is gone/);
    const report = await jobs.run("all");
    assert.equal(report.status, "failed");
    assert.match(report.error ?? "", /is gone/);
    assert.equal(await exists(lake), false, "nothing recreated the lake directory");

    await Deno.rename(`${lake}.away`, lake); // mounted again: the same batch goes through
    await writer.write({
      topic: "t",
      partition: 0,
      firstOffset: 10,
      lastOffset: 19,
      rows: rows(10, 19),
    });
    assert.equal((await probeStore(store)).state, "ok");
    assert.deepEqual(
      (await readBronze(engine, lake)).map((r) => Number(r.log_offset)).sort((a, b) => a - b),
      [
        ...Array(20).keys(),
      ],
    );
  });
});
