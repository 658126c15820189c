import assert from "node:assert/strict";
import { readOnlyRuntime } from "./read_only_runtime.ts";

function fakeRuntime(path: string, protocol = 1) {
  const opened: number[] = [];
  const globbed: number[] = [];
  return {
    opened,
    globbed,
    runtime: {
      openFile: (_mod: unknown, fileId: number, _flags: number) => opened.push(fileId),
      glob: (_mod: unknown, ptr: number, _len: number) => globbed.push(ptr),
      resolveFileInfo: () => ({ dataProtocol: protocol, dataUrl: path }),
    },
  };
}

Deno.test("readOnlyRuntime() fails a read of a missing file instead of letting DuckDB create it", () => {
  const { runtime, opened } = fakeRuntime("/lake/gone.parquet");
  const failures: string[] = [];
  const guarded = readOnlyRuntime(runtime, (_m, msg) => failures.push(msg), () => false);
  guarded.openFile({}, 7, 1); // FILE_FLAGS_READ
  assert.deepEqual(opened, []);
  assert.match(failures[0] ?? "", /No such file "\/lake\/gone.parquet"/);
});

Deno.test("readOnlyRuntime() opens existing files, writes that may create, and other protocols", () => {
  const exists = (p: string) => p === "/lake/here.parquet";
  const fail = () => assert.fail("nothing may fail here");
  const here = fakeRuntime("/lake/here.parquet");
  readOnlyRuntime(here.runtime, fail, exists).openFile({}, 1, 1);
  const created = fakeRuntime("/scratch/new.parquet");
  readOnlyRuntime(created.runtime, fail, exists).openFile({}, 2, 2 | 8); // WRITE | FILE_CREATE
  const buffer = fakeRuntime("buf.parquet", 0);
  readOnlyRuntime(buffer.runtime, fail, exists).openFile({}, 3, 1);
  assert.deepEqual([here.opened, created.opened, buffer.opened], [[1], [2], [3]]);
});

Deno.test("readOnlyRuntime() globs a literal path with a stat and hands patterns to the runtime", () => {
  const { runtime, globbed } = fakeRuntime("");
  const exists = (p: string) => p === "/lake/dt=2026-03-10/a+b 1.parquet";
  const guarded = readOnlyRuntime(runtime, () => assert.fail("no failure"), exists);
  const added: unknown[] = [];
  const heap = new TextEncoder().encode(
    "/lake/dt=2026-03-10/a+b 1.parquet|/lake/gone.parquet|/lake/*/x.parquet",
  );
  const mod = {
    HEAPU8: heap,
    ccall: (name: string, _r: null, _t: string[], args: unknown[]) => added.push(name, ...args),
  };
  guarded.glob(mod, 0, 33);
  guarded.glob(mod, 34, 18);
  assert.deepEqual(added, ["duckdb_web_fs_glob_add_path", "/lake/dt=2026-03-10/a+b 1.parquet"]);
  assert.deepEqual(globbed, [], "literal paths never reach fast-glob");
  guarded.glob(mod, 53, 18);
  assert.deepEqual(globbed, [53], "a pattern does");
});
