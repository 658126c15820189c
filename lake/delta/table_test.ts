import assert from "node:assert/strict";
import { LakeEngine } from "../engine/engine.ts";
import { LocalStore } from "../storage/local.ts";
import { MemoryStore } from "../storage/memory.ts";
import type { ObjectStore } from "../storage/store.ts";
import { type Action, commitKey, decodeCommit, type TableSchema } from "./protocol.ts";
import { PartitionReplacement } from "./replace.ts";
import { DeltaConflictError, DeltaTable } from "./table.ts";
import { IN_FLIGHT_MS, vacuum } from "./vacuum.ts";

const SCHEMA: TableSchema = {
  columns: [
    { name: "id", type: "long", nullable: true },
    { name: "dt", type: "date", nullable: true },
  ],
  partitionColumns: ["dt"],
};

async function withTable(
  fn: (
    open: (o?: { checkpointInterval?: number }) => DeltaTable,
    store: ObjectStore,
    engine: LakeEngine,
  ) => Promise<void>,
) {
  const engine = new LakeEngine();
  const store = new MemoryStore();
  try {
    await fn((o = {}) => new DeltaTable(store, "t", SCHEMA, { engine, ...o }), store, engine);
  } finally {
    engine.close();
    await store.close();
  }
}

function add(path: string, dt = "2026-12-01"): Action {
  return {
    add: { path, partitionValues: { dt }, size: 1, modificationTime: 0, dataChange: true },
  };
}

Deno.test("DeltaTable.commit() creates the table once, then appends one version per commit", async () => {
  await withTable(async (open, store) => {
    const t = open();
    assert.equal((await t.snapshot()).version, -1);
    const first = await t.commit("WRITE", () => [add("a")]);
    assert.equal(first?.version, 0);
    const second = await t.commit("WRITE", () => [add("b")]);
    assert.equal(second?.version, 1);
    const v0 = decodeCommit((await store.get(commitKey("t", 0)))!);
    assert.ok(v0.some((a) => "protocol" in a && a.protocol.minReaderVersion === 1));
    assert.ok(v0.some((a) => "metaData" in a && a.metaData.partitionColumns[0] === "dt"));
    const v1 = decodeCommit((await store.get(commitKey("t", 1)))!);
    assert.ok(!v1.some((a) => "metaData" in a), "only version 0 creates the table");
    assert.equal(await t.commit("WRITE", () => undefined), undefined, "nothing to commit");
  });
});

Deno.test("DeltaTable.commit(): writers racing for versions each land exactly once", async () => {
  await withTable(async (open) => {
    // Four processes' views of one table, twenty commits each, all at once.
    const writers = Array.from({ length: 4 }, () => open());
    const paths = writers.flatMap((_, w) => Array.from({ length: 20 }, (_, i) => `w${w}-${i}`));
    await Promise.all(
      writers.map((t, w) =>
        (async () => {
          for (let i = 0; i < 20; i++) await t.commit("WRITE", () => [add(`w${w}-${i}`)]);
        })()
      ),
    );
    const fresh = await open().snapshot();
    assert.equal(fresh.version, 79);
    assert.deepEqual([...fresh.files.keys()].sort(), paths.sort());
  });
});

Deno.test("DeltaTable.commit() decides again on the winner's state (txn)", async () => {
  await withTable(async (open) => {
    const a = open(), b = open();
    const write = (t: DeltaTable, last: number) =>
      t.commit("STREAMING UPDATE", (s) => {
        if (s.txn("p0") >= last) return undefined; // already in
        return [add(`to-${last}`), { txn: { appId: "p0", version: last } }];
      });
    const [x, y] = await Promise.all([write(a, 9), write(b, 9)]);
    assert.equal([x, y].filter((c) => c !== undefined).length, 1, "one writer commits offset 9");
    const s = await open().snapshot();
    assert.equal(s.txn("p0"), 9);
    assert.equal(s.files.size, 1);
  });
});

Deno.test("DeltaTable writes a checkpoint every checkpointInterval versions and reads it back", async () => {
  await withTable(async (open, store) => {
    const t = open({ checkpointInterval: 5 });
    for (let i = 0; i < 12; i++) {
      await t.commit("WRITE", (s) => [
        add(`f${i}`, `2026-12-0${1 + (i % 3)}`),
        { txn: { appId: "wal+0", version: i } },
        ...(i === 11 && s.files.has("f0")
          ? [{ remove: { path: "f0", deletionTimestamp: Date.now(), dataChange: true } }]
          : []),
      ]);
    }
    assert.equal(await t.lastCheckpoint(), 10);
    // A reader that starts now reads the checkpoint of version 10 and commit 11 only.
    await store.delete(commitKey("t", 3));
    const s = await open().snapshot();
    assert.equal(s.version, 11);
    assert.equal(s.txn("wal+0"), 11);
    assert.deepEqual(
      [...s.files.keys()].sort(),
      Array.from({ length: 11 }, (_, i) => `f${i + 1}`).sort(),
    );
    assert.equal(s.files.get("f4")?.partitionValues.dt, "2026-12-02");
    assert.ok(s.tombstones.has("f0"));
  });
});

Deno.test("PartitionReplacement refuses to commit over a partition another writer changed", async () => {
  await withTable(async (open) => {
    const t = open();
    await t.commit("WRITE", () => [add("old", "2026-12-01")]);
    const file = { rows: 1, bytes: new Uint8Array(12), stats: [] };
    const first = new PartitionReplacement(open());
    const second = new PartitionReplacement(open());
    assert.deepEqual(await first.read("2026-12-01"), ["t/old"]);
    await second.read("2026-12-01");
    await first.write("2026-12-01", file);
    await second.write("2026-12-01", file);
    await first.commit();
    await assert.rejects(second.commit(), DeltaConflictError);
    const s = await open().snapshot();
    assert.equal(s.files.size, 1, "the first replacement alone");
    assert.ok(!s.files.has("old"));
  });
});

Deno.test("vacuum() deletes files no commit needs once past retention, and log entries before the last checkpoint", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vacuum_test_" });
  const engine = new LakeEngine();
  try {
    const store = await LocalStore.open(dir);
    const t = new DeltaTable(store, "t", SCHEMA, { engine, checkpointInterval: 5 });
    const put = async (name: string) => {
      await store.put(`t/dt=2026-12-01/${name}`, new Uint8Array(12));
      return `dt=2026-12-01/${name}`;
    };
    await put("orphan.parquet"); // a crashed writer's file: no commit names it
    // A put killed between writing its temporary file and renaming it into place.
    const crashedTemp = `${dir}/t/dt=2026-12-01/.${crypto.randomUUID()}.tmp`;
    await Deno.writeFile(crashedTemp, new Uint8Array(7));
    const live = await put("live.parquet");
    const replaced = await put("replaced.parquet");
    await t.commit("WRITE", () => [add(replaced), add(live)]);
    await t.commit("WRITE", () => [
      { remove: { path: replaced, deletionTimestamp: Date.now(), dataChange: true } },
    ]);
    for (let i = 0; i < 4; i++) {
      await t.commit("WRITE", () => [{ txn: { appId: "x", version: i } }]);
    }
    assert.equal(await t.lastCheckpoint(), 5);

    const young = await vacuum(t, 3_600_000);
    assert.deepEqual([young.data_files, young.log_files], [0, 0], "everything is younger than 1 h");
    const old = await vacuum(t, 0, Date.now() + 1000);
    assert.equal(old.data_files, 1, "the replaced file; the orphan may be a writer's in flight");
    assert.equal(old.log_files, 5, "versions 0–4");
    assert.ok((await Deno.stat(crashedTemp)).isFile, "a put may still be writing its temp file");
    const later = await vacuum(t, 0, Date.now() + IN_FLIGHT_MS + 1000);
    assert.equal(later.data_files, 1, "the orphan, once no writer can still be committing it");
    await assert.rejects(() => Deno.stat(crashedTemp), Deno.errors.NotFound);
    const left = (await Array.fromAsync(store.list("t/"))).map((o) => o.key).sort();
    assert.deepEqual(left, [
      "t/_delta_log/00000000000000000005.checkpoint.parquet",
      "t/_delta_log/00000000000000000005.json",
      "t/_delta_log/_last_checkpoint",
      "t/dt=2026-12-01/live.parquet",
    ]);
    const fresh = new DeltaTable(store, "t", SCHEMA, { engine });
    assert.deepEqual([...(await fresh.snapshot()).files.keys()], [live]);
  } finally {
    engine.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("DeltaTable.commit() takes turns per table: no lost put-if-absent in one process, other tables never wait", async () => {
  const engine = new LakeEngine();
  const store = new MemoryStore();
  let lost = 0;
  const putIfAbsent = store.putIfAbsent.bind(store);
  store.putIfAbsent = async (key, data) => {
    const won = await putIfAbsent(key, data);
    if (!won) lost++;
    return won;
  };
  try {
    const a = new DeltaTable(store, "a", SCHEMA, { engine });
    const b = new DeltaTable(store, "b", SCHEMA, { engine });
    const done = await Promise.all(
      Array.from({ length: 10 }, (_, i) => a.commit("WRITE", () => [add(`f${i}.parquet`)])),
    );
    assert.deepEqual(done.map((c) => c!.version).sort((x, y) => x - y), [...Array(10).keys()]);
    assert.equal(lost, 0, "commits of one process never race each other for a version");
    // A's commit waits inside its turn; b's commits go through meanwhile.
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    const slow = a.commit("WRITE", async () => (await held, [add("slow.parquet")]));
    const quick = await b.commit("WRITE", () => [add("quick.parquet")]);
    assert.equal(quick?.version, 0);
    release();
    assert.equal((await slow)?.version, 10);
  } finally {
    engine.close();
    await store.close();
  }
});
