/**
 * DuckDB-wasm's Node runtime opens every file with `O_CREAT`, even to read it: a lake file that
 * goes away between DuckDB's glob and its open (a batch a crash left behind, deleted on restart;
 * a file vacuumed after its retention) is created again, empty, at the lake path, and every later
 * scan of that partition fails with "too small to be a Parquet file". This wraps the runtime so a
 * file DuckDB only reads must exist: a missing one fails that call, and nothing is created.
 *
 * It also answers DuckDB's glob of a literal path (every path the lake's readers pass: they come
 * from Delta logs) with one `stat`, where the runtime runs fast-glob, compiling matchers for each
 * path of every statement, twice (bind and scan): a third of a point query's CPU over ~80 files.
 * A path with glob characters still goes to fast-glob.
 *
 * @module
 */

/** The `FileFlags` that let DuckDB create a file (`FILE_CREATE`, `FILE_CREATE_NEW`). */
const CREATE_FLAGS = 8 | 16;
/** `DuckDBDataProtocol.NODE_FS`: a file on the real file system. */
const NODE_FS = 1;

/** Characters fast-glob reads as a pattern. */
const GLOB_CHARS = /[*?[\](){}!\\]/;

/** The part of the Emscripten module a glob answer uses. */
interface Module {
  HEAPU8: Uint8Array;
  ccall(name: string, returns: null, types: string[], args: unknown[]): unknown;
}

const decoder = new TextDecoder();

/** The part of DuckDB-wasm's Node runtime this wrapper uses. */
export interface NodeRuntime {
  openFile(mod: unknown, fileId: number, flags: number): unknown;
  glob(mod: unknown, pathPtr: number, pathLen: number): unknown;
  resolveFileInfo(
    mod: unknown,
    fileId: number,
  ): { dataProtocol?: number; dataUrl?: string | null } | null;
}

/**
 * `runtime` with an `openFile` that refuses to create a file DuckDB asked only to read: it calls
 * `fail` (DuckDB-wasm's `failWith`, which makes the statement fail) instead; and a `glob` that
 * answers a literal path itself. `exists` says whether a path is a file.
 */
export function readOnlyRuntime<R extends NodeRuntime>(
  runtime: R,
  fail: (mod: unknown, message: string) => void,
  exists: (path: string) => boolean,
): R {
  return {
    ...runtime,
    glob(mod: unknown, pathPtr: number, pathLen: number) {
      const m = mod as Module;
      const path = decoder.decode(m.HEAPU8.subarray(pathPtr, pathPtr + pathLen));
      if (GLOB_CHARS.test(path)) return runtime.glob(mod, pathPtr, pathLen);
      if (exists(path)) m.ccall("duckdb_web_fs_glob_add_path", null, ["string"], [path]);
    },
    openFile(mod: unknown, fileId: number, flags: number) {
      const info = runtime.resolveFileInfo(mod, fileId);
      const path = info?.dataUrl;
      if (
        info?.dataProtocol === NODE_FS && path && (flags & CREATE_FLAGS) === 0 && !exists(path)
      ) {
        fail(mod, `IO Error: No such file "${path}"`);
        return 0;
      }
      return runtime.openFile(mod, fileId, flags);
    },
  };
}
