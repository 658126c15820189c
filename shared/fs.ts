/**
 * Durable writes to a local file system: a write is complete only once its bytes, and the
 * directory entry naming them, survive a crash. The WAL, the file dead-letter sink and the lake's
 * local store build on these.
 *
 * @module
 */
import { dirname } from "node:path";

/** Writes all of `data`: one write() call may take only part of it. */
export async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let n = 0; n < data.byteLength;) n += await file.write(data.subarray(n));
}

/** fsyncs a directory so that a created or renamed entry survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  using d = await Deno.open(dir, { read: true });
  await d.sync();
}

/** Replaces a file atomically: write a temporary file, fsync it, rename it over, fsync the directory. */
export async function writeFileDurably(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  {
    using f = await Deno.open(tmp, { create: true, write: true, truncate: true });
    const data = new TextEncoder().encode(text);
    await writeAll(f, data);
    await f.sync();
  }
  await Deno.rename(tmp, path);
  await syncDir(dirname(path));
}

export async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}
