import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { type BronzeRow, BronzeWriter } from "./bronze.ts";
import { type LakeEngine, parquetProblem } from "./engine/engine.ts";
import { bronzeFile, TABLES } from "./layout.ts";
import { lakeOf, readBronze, tableFiles, testEvent } from "../tests/lake_helpers.ts";
import { withLake as withLakeIn } from "./engine/testing.ts";

function rows(
  from: number,
  to: number,
  make = (o: number) => testEvent({ user_id: `u${o}` }),
): BronzeRow[] {
  const out: BronzeRow[] = [];
  for (let o = from; o <= to; o++) out.push({ offset: o, event: make(o) });
  return out;
}

const withLake = (fn: (lake: string, engine: LakeEngine) => Promise<void>) =>
  withLakeIn("bronze_test_", fn);

const BATCH = { topic: "events", partition: 0, first: 0, last: 1 };
const NAME = /^events\+0\+00000000000000000000\+00000000000000000001-[0-9a-f]{8}\.parquet$/;

Deno.test("bronzeFile() rejects anything but a date and a known type", async (t) => {
  for (
    const [dt, type] of [
      ["2026-11-23/..", "login"],
      ["../../etc", "login"],
      ["2026-13-01", "login"],
      ["2026-11-23", "../x"],
      ["2026-11-23", "login/../../x"],
      ["2026-11-23", "Login"],
      ["2026-11-23", "unknown_type"],
      ["2026-11-23\u0000", "login"],
    ]
  ) {
    await t.step(`${JSON.stringify(dt)} / ${JSON.stringify(type)}`, () => {
      assert.throws(() => bronzeFile(dt!, type!, BATCH), /Invalid partition/);
    });
  }
  for (const type of ["login", "other"]) {
    const [dt, t, name] = bronzeFile("2026-11-23", type, BATCH).split("/");
    assert.deepEqual([dt, t], ["dt=2026-11-23", `type=${type}`]);
    assert.match(name!, NAME);
  }
});

Deno.test("bronzeFile() names are unique, sort by offset and refuse unsafe topics", () => {
  const name = (topic: string, partition: number, first: number, last: number) =>
    bronzeFile("2026-11-23", "login", { topic, partition, first, last }).split("/")[2]!;
  assert.match(
    name("events", 2, 7, 42),
    /^events\+2\+00000000000000000007\+00000000000000000042-[0-9a-f]{8}\.parquet$/,
  );
  assert.notEqual(name("t", 0, 1, 2), name("t", 0, 1, 2), "a file is never written twice");
  const names = [[9, 10], [100, 200], [11, 99]].map(([a, b]) => name("t", 0, a!, b!));
  assert.deepEqual([...names].sort(), [names[0], names[2], names[1]]);
  assert.throws(() => name("../etc", 0, 0, 1));
  assert.throws(() => name("a/b", 0, 0, 1));
  assert.throws(() => name("events", -1, 0, 1));
});

Deno.test("BronzeWriter.write() stores hive-partitioned Parquet with µs timestamps", async () => {
  await withLake(async (lake, engine) => {
    const writer = new BronzeWriter(engine, (await lakeOf(lake, engine)).bronze);
    const batch = rows(0, 3, (o) =>
      testEvent({
        user_id: `u${o}`,
        type: o % 2 ? "purchase" : "login",
        event_type: o % 2 ? "purchase" : "login",
        occurred_at: "2026-11-22T23:59:59.999999Z",
        received_at: o < 2 ? "2026-11-22T23:59:59.000001Z" : "2026-11-23T00:00:00.000000Z",
        payload: { amount: o, currency: "USD" },
      }));
    const result = await writer.write({
      topic: "events",
      partition: 1,
      firstOffset: 0,
      lastOffset: 3,
      rows: batch,
    });
    assert.equal(result.rows, 4);
    const name = "events\\+1\\+00000000000000000000\\+00000000000000000003-[0-9a-f]{8}\\.parquet";
    const files = result.files.sort();
    [
      "dt=2026-11-22/type=login",
      "dt=2026-11-22/type=purchase",
      "dt=2026-11-23/type=login",
      "dt=2026-11-23/type=purchase",
    ].forEach((dir, i) => assert.match(files[i]!, new RegExp(`^bronze/events/${dir}/${name}$`)));
    const back = await readBronze(engine, lake);
    assert.deepEqual(back.map((r) => r.log_offset), [0, 1, 2, 3]);
    assert.equal(back[0]!.occurred_us, Date.parse("2026-11-22T23:59:59.999Z") * 1000 + 999);
    assert.equal(back[0]!.received_us, Date.parse("2026-11-22T23:59:59.000Z") * 1000 + 1);
    assert.deepEqual(JSON.parse(back[3]!.payload), { amount: 3, currency: "USD" });
    assert.deepEqual(back.map((r) => `${r.dt}/${r.type}`), [
      "2026-11-22/login",
      "2026-11-22/purchase",
      "2026-11-23/login",
      "2026-11-23/purchase",
    ]);
    // Partition values live in the path only; Spark refuses a data column named like a partition.
    const columns = await engine.query<{ name: string }>(
      `SELECT name FROM parquet_schema('${join(lake, result.files[0]!).replaceAll("'", "''")}')`,
    );
    const names = columns.map((c) => c.name).slice(1);
    assert.deepEqual(names.slice(0, 10), [
      "event_id",
      "event_type",
      "user_id",
      "occurred_at",
      "received_at",
      "source",
      "payload",
      "log_topic",
      "log_partition",
      "log_offset",
    ]);
    // Then the payload's own fields of the file's type, typed, for silver; never dt or type.
    assert.deepEqual(names.slice(10).slice(-2), ["extra", "reject"]);
    assert.ok(!names.includes("dt") && !names.includes("type"), names.join());
    // Other readers (Spark, Trino) run as other users: files must not keep DuckDB's 0600.
    const mode = (await Deno.stat(join(lake, result.files[0]!))).mode! & 0o777;
    assert.equal(mode, 0o644);
    assert.equal(await writer.committedOffset("events", 1), 4);
    assert.equal(await writer.committedOffset("events", 0), 0);
  });
});

Deno.test("BronzeWriter.write() never duplicates a re-delivered offset", async (t) => {
  await withLake(async (lake, engine) => {
    const writer = new BronzeWriter(engine, (await lakeOf(lake, engine)).bronze);
    const all = rows(0, 299);
    await writer.write({
      topic: "events",
      partition: 0,
      firstOffset: 0,
      lastOffset: 99,
      rows: all.slice(0, 100),
    });

    await t.step("the same batch again writes nothing", async () => {
      const r = await writer.write({
        topic: "events",
        partition: 0,
        firstOffset: 0,
        lastOffset: 99,
        rows: all.slice(0, 100),
      });
      assert.equal(r.rows, 0);
      assert.equal(r.skipped, 100);
    });
    await t.step(
      "an overlapping batch with other boundaries keeps only the new offsets",
      async () => {
        const r = await writer.write({
          topic: "events",
          partition: 0,
          firstOffset: 50,
          lastOffset: 199,
          rows: all.slice(50, 200),
        });
        assert.equal(r.rows, 100);
        assert.equal(r.skipped, 50);
        assert.match(
          r.files[0]!,
          /events\+0\+00000000000000000100\+00000000000000000199-[0-9a-f]{8}\.parquet$/,
        );
      },
    );
    await t.step("a batch of rejected records only still advances progress", async () => {
      await writer.write({
        topic: "events",
        partition: 0,
        firstOffset: 200,
        lastOffset: 209,
        rows: [],
      });
      assert.equal(await writer.committedOffset("events", 0), 210);
    });
    const back = await readBronze(engine, lake);
    assert.equal(back.length, 200);
    assert.equal(new Set(back.map((r) => r.log_offset)).size, 200);
  });
});

Deno.test("BronzeWriter.write() leaves a crashed attempt's files out of the table", async () => {
  await withLake(async (lake, engine) => {
    const writer = new BronzeWriter(engine, (await lakeOf(lake, engine)).bronze);
    await writer.write({
      topic: "events",
      partition: 0,
      firstOffset: 0,
      lastOffset: 9,
      rows: rows(0, 9),
    });
    // A crash after one of the next batch's files was written, before its commit.
    const [kept] = await tableFiles(engine, lake, TABLES.bronze);
    const orphan = join(
      dirname(kept!),
      "events+0+00000000000000000010+00000000000000000019-0rphan00.parquet",
    );
    await Deno.copyFile(kept!, orphan);
    // Re-processing after the restart cuts the range differently.
    await writer.write({
      topic: "events",
      partition: 0,
      firstOffset: 10,
      lastOffset: 14,
      rows: rows(10, 14),
    });
    const back = await readBronze(engine, lake);
    assert.deepEqual(back.map((r) => r.log_offset), [...Array(15).keys()]);
    assert.ok(!(await tableFiles(engine, lake, TABLES.bronze)).includes(orphan));
  });
});

Deno.test("BronzeWriter.write() keeps exactly once when two writers race on one partition", async () => {
  await withLake(async (lake, engine) => {
    // Two consumers that both think they own the partition (a rebalance in the middle).
    const a = new BronzeWriter(engine, (await lakeOf(lake, engine)).bronze);
    const b = new BronzeWriter(engine, (await lakeOf(lake, engine)).bronze);
    const all = rows(0, 999);
    await Promise.all([
      a.write({
        topic: "events",
        partition: 3,
        firstOffset: 0,
        lastOffset: 599,
        rows: all.slice(0, 600),
      }),
      // The new owner writes its batches in order, as its LakeLoader does.
      (async () => {
        await b.write({
          topic: "events",
          partition: 3,
          firstOffset: 0,
          lastOffset: 399,
          rows: all.slice(0, 400),
        });
        await b.write({
          topic: "events",
          partition: 3,
          firstOffset: 400,
          lastOffset: 999,
          rows: all.slice(400),
        });
      })(),
    ]);
    const back = await readBronze(engine, lake);
    assert.equal(back.length, 1000);
    assert.equal(new Set(back.map((r) => r.log_offset)).size, 1000);
  });
});

Deno.test("parquetProblem() refuses bytes without the PAR1 magic at both ends", () => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  assert.equal(
    parquetProblem(bytes('{"event_id":"payload text where Parquet should be"}')),
    "no PAR1 magic",
  );
  assert.match(parquetProblem(bytes("PAR1")) ?? "", /only 4 bytes/);
  assert.equal(parquetProblem(bytes("PAR1 footer-ish bytes PAR1")), undefined);
});
