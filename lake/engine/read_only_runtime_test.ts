import assert from "node:assert/strict";
import { readOnlyRuntime } from "./read_only_runtime.ts";

function fakeRuntime(path: string, protocol = 1) {
  const opened: number[] = [];
  return {
    opened,
    runtime: {
      openFile: (_mod: unknown, fileId: number, _flags: number) => opened.push(fileId),
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
