// Unit tests of the DuckDB worker wrapper.
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Column, LakeEngine } from "./engine.ts";
import { withLake } from "./testing.ts";

/** Rows in the Parquet files a path or glob names, read back through `engine`. */
async function rowsIn(engine: LakeEngine, glob: string): Promise<number> {
  const [row] = await engine.query<{ n: number }>(
    `SELECT count(*)::INTEGER AS n FROM read_parquet('${glob.replaceAll("'", "''")}')`,
  );
  return row!.n;
}

Deno.test("LakeEngine replaces its worker between calls after recycleAfterRows rows", async () => {
  await withLake("engine_test_", async (lake) => {
    const engine = new LakeEngine({ recycleAfterRows: 10 });
    try {
      const cols = (n: number): Record<string, Column> => ({
        id: { kind: "int32", values: Int32Array.from({ length: n }, (_, i) => i) },
      });
      await engine.writeParquet(cols(6), join(lake, "a.parquet"));
      assert.equal(engine.recycled, 0);
      await engine.writeParquet(cols(6), join(lake, "b.parquet"));
      assert.equal(engine.recycled, 1, "12 rows ≥ 10: the worker is replaced");
      // The next call starts a fresh worker that reads what the old one wrote.
      assert.equal(await rowsIn(engine, join(lake, "*.parquet")), 12);
    } finally {
      engine.close();
    }
  });
});

Deno.test("LakeEngine replaces a worker whose memory reached recycleAboveMb, and no call fails for it", async () => {
  // Every DuckDB worker holds more than 1 MiB of WebAssembly memory after its first call.
  const engine = new LakeEngine({ recycleAboveMb: 1 });
  try {
    // Three calls queued on the first worker at once: it is retired after the first answer, and
    // the two others still answer from it.
    const answers = await Promise.all(
      [1, 2, 3].map((i) => engine.query<{ n: number }>("SELECT CAST(? AS INTEGER) AS n", [i])),
    );
    assert.deepEqual(answers, [[{ n: 1 }], [{ n: 2 }], [{ n: 3 }]]);
    assert.equal(engine.recycled, 1, "the first worker passed 1 MiB: replaced once");
    // Later calls go to the fresh worker, which is replaced in its turn.
    assert.deepEqual(await engine.query("SELECT CAST(42 AS INTEGER) AS n"), [{ n: 42 }]);
    assert.equal(engine.recycled, 2);
  } finally {
    engine.close();
  }
});

Deno.test("LakeEngine keeps its worker without recycleAboveMb", async () => {
  const engine = new LakeEngine();
  try {
    for (let i = 0; i < 3; i++) await engine.query("SELECT 1");
    assert.equal(engine.recycled, 0);
  } finally {
    engine.close();
  }
});

Deno.test("LakeEngine.writeParquet() into a directory that is gone fails with the system's error, and the engine goes on", async () => {
  await withLake("engine_test_", async (lake) => {
    // A timeout far above a write's time: the call must fail by itself, not by the timeout.
    const engine = new LakeEngine({ timeoutMs: 60_000 });
    const cols: Record<string, Column> = { id: { kind: "int32", values: Int32Array.of(1, 2) } };
    try {
      await Deno.writeTextFile(join(lake, "file"), "not a directory");
      for (
        const [path, error] of [
          [join(lake, "missing", "a.parquet"), /No such file|NotFound|ENOENT/],
          [join(lake, "file", "a.parquet"), /Not a directory|ENOTDIR/],
        ] as const
      ) {
        await assert.rejects(engine.writeParquet(cols, path), (err: Error) => {
          assert.match(err.message, error);
          assert.doesNotMatch(err.message, /timed out/);
          return true;
        });
      }
      assert.equal(await engine.writeParquet(cols, join(lake, "ok.parquet")), 2);
      assert.equal(await rowsIn(engine, join(lake, "ok.parquet")), 2);
    } finally {
      engine.close();
    }
  });
});

/** The nice value of each thread of this process (Linux: /proc/self/task/<tid>/stat). */
async function niceByThread(): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for await (const task of Deno.readDir("/proc/self/task")) {
    const stat = await Deno.readTextFile(`/proc/self/task/${task.name}/stat`).catch(() => "");
    if (stat) {
      out.set(Number(task.name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]));
    }
  }
  return out;
}

/** How many threads of this process run at nice `n`. */
const threadsAt = async (n: number) =>
  [...(await niceByThread()).values()].filter((v) => v === n).length;

Deno.test({
  name: "LakeEngine niceness lowers its worker thread's priority, not the process's",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    assert.equal(await threadsAt(10), 0);
    const background = new LakeEngine({ niceness: 10 });
    const plain = new LakeEngine();
    try {
      await Promise.all([background.query("SELECT 1"), plain.query("SELECT 1")]);
      assert.equal(await threadsAt(10), 1, "the background engine's worker thread");
      assert.equal((await niceByThread()).get(Deno.pid), 0, "the main thread keeps its priority");
    } finally {
      background.close();
      plain.close();
    }
  },
});
