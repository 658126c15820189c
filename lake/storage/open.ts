/**
 * The lake's store from its location: a local path or `file:///…` (today's disk, {@link LocalStore})
 * or `s3://bucket/prefix` (any S3-compatible object store, {@link S3Store}). The rest of the
 * program sees only an {@link ObjectStore}.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { LocalStore } from "./local.ts";
import { openS3Store, type S3StoreOptions } from "./s3.ts";
import type { ObjectStore } from "./store.ts";

/** Where a lake lives. */
export type LakeLocation = { kind: "local"; dir: string } | { kind: "s3"; url: string };

/** Parses `LAKE_URL` (or `LAKE_DIR`): `s3://bucket/prefix`, `file:///dir` or a path. */
export function lakeLocation(url: string): LakeLocation {
  if (url.startsWith("s3://")) return { kind: "s3", url };
  if (url.startsWith("file://")) return { kind: "local", dir: fileURLToPath(url) };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new Error(`Cannot open a lake at "${url}": use a path, file:///… or s3://bucket/prefix`);
  }
  return { kind: "local", dir: url };
}

/** Opens the store of a lake location; S3 needs `s3` (credentials, endpoint, cache). */
export async function openStore(
  location: LakeLocation,
  s3?: S3StoreOptions,
): Promise<ObjectStore> {
  if (location.kind === "local") return await LocalStore.open(location.dir);
  if (!s3) throw new Error(`Cannot open ${location.url} without S3 settings`);
  return openS3Store(location.url, s3);
}
