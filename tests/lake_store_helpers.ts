/**
 * A test lake on either store: a directory on local disk, or a fresh prefix of the test bucket on
 * the S3 server `scripts/test.sh` runs (s3proxy). The S3 endpoint and keys come from the AWS SDK's
 * variables test.sh exports (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_REGION,
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_TEST_BUCKET), with s3proxy.sh's defaults.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type DeltaSnapshot, readDeltaTables } from "./delta_reader.ts";
import type { Lake } from "../lake/lake.ts";
import { TABLES } from "../lake/layout.ts";
import { openS3Store, type S3StoreOptions } from "../lake/storage/s3.ts";
import { LocalStore } from "../lake/storage/local.ts";
import type { ObjectStore } from "../lake/storage/store.ts";

const ENV = (name: string) => Deno.env.get(name) || undefined;

/** The test S3 server and bucket. */
export const S3_TEST = {
  endpoint: ENV("AWS_ENDPOINT_URL_S3") ?? ENV("AWS_ENDPOINT_URL") ?? "http://127.0.0.1:9000",
  region: ENV("AWS_REGION") ?? "us-east-1",
  accessKeyId: ENV("AWS_ACCESS_KEY_ID") ?? "streamgate",
  secretAccessKey: ENV("AWS_SECRET_ACCESS_KEY") ?? "streamgate-secret-key",
  bucket: ENV("S3_TEST_BUCKET") ?? "streamgate-test",
} as const;

/** {@link S3_TEST} as options of the S3 store. */
export const S3_TEST_OPTIONS: S3StoreOptions = {
  endpoint: S3_TEST.endpoint,
  region: S3_TEST.region,
  accessKeyId: S3_TEST.accessKeyId,
  secretAccessKey: S3_TEST.secretAccessKey,
};

/** The environment that points a gateway (or the Delta reader) at {@link S3_TEST}'s server. */
export function s3Env(endpoint: string = S3_TEST.endpoint): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_REGION: S3_TEST.region,
    AWS_ACCESS_KEY_ID: S3_TEST.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3_TEST.secretAccessKey,
  };
}

/** Which store a test lake is on. */
export type StoreKind = "disk" | "s3";
export const STORE_KINDS: readonly StoreKind[] = ["disk", "s3"];

/** A lake for one test. */
export interface TestLake {
  kind: StoreKind;
  /** `LAKE_URL` of the gateway: a path or `s3://bucket/prefix`. */
  url: string;
  /** The gateway's environment for this lake (`LAKE_URL`, and the S3 settings and cache). */
  env: Record<string, string>;
  /** The environment of Delta's Java reader for this lake. */
  readerEnv: Record<string, string>;
  /** The URI of the table at `key` for Delta's Java reader. */
  uri(key: string): string;
  /** Opens the lake's store, as the gateway does. */
  open(): Promise<ObjectStore>;
  /** Deletes what the lake holds. */
  cleanup(): Promise<void>;
}

/**
 * A new lake on `kind` whose local parts (the disk lake, the S3 cache) live under `root`.
 * `endpoint` puts the gateway's S3 traffic through another address (a fault proxy); the reader
 * and cleanup always talk to the server itself.
 */
export function testLake(kind: StoreKind, root: string, endpoint?: string): TestLake {
  if (kind === "disk") {
    const dir = join(root, "lake");
    return {
      kind,
      url: dir,
      env: { LAKE_URL: dir },
      readerEnv: {},
      uri: (key) => join(dir, key),
      open: () => LocalStore.open(dir),
      cleanup: () => Promise.resolve(),
    };
  }
  const prefix = `test/${crypto.randomUUID()}`;
  const url = `s3://${S3_TEST.bucket}/${prefix}`;
  return {
    kind,
    url,
    env: { LAKE_URL: url, LAKE_CACHE_DIR: join(root, "cache"), ...s3Env(endpoint) },
    readerEnv: s3Env(),
    uri: (key) => `s3a://${S3_TEST.bucket}/${prefix}/${key}`,
    open: () => Promise.resolve(openS3Store(url, S3_TEST_OPTIONS)),
    cleanup: () => deleteS3Prefix(url),
  };
}

/** Deletes every object under an `s3://bucket/prefix` of the test server. */
export async function deleteS3Prefix(url: string): Promise<void> {
  const store = openS3Store(url, { ...S3_TEST_OPTIONS, maxConcurrency: 16 });
  try {
    const keys: string[] = [];
    for await (const info of store.list("")) keys.push(info.key);
    await Promise.all(keys.map((key) => store.delete(key)));
  } finally {
    await store.close();
  }
}

/** Records of `topic`'s partitions bronze holds, from its `txn` versions (the project's reading). */
export async function bronzeRecords(
  lake: Lake,
  topic: string,
  partitions: number,
): Promise<number> {
  const snap = await lake.bronze.freshSnapshot();
  let n = 0;
  for (let p = 0; p < partitions; p++) n += snap.txn(`${topic}+${p}`) + 1;
  return n;
}

/**
 * Delta's Java reader reads bronze: every id of `expected` is there, no event and no log position
 * is there twice, and, with `exact`, nothing else is there. Resolves with what it read.
 */
export async function assertBronzeExactlyOnce(
  lake: TestLake,
  expected: ReadonlySet<string>,
  { exact = true }: { exact?: boolean } = {},
): Promise<DeltaSnapshot> {
  const [bronze] = await readDeltaTables([lake.uri(TABLES.bronze)], {
    env: lake.readerEnv,
    columns: ["event_id", "log_topic", "log_partition", "log_offset"],
  });
  const rows = bronze!.values ?? [];
  const ids = new Set(rows.map((r) => String(r[0])));
  const missing = [...expected].filter((id) => !ids.has(id));
  assert.equal(missing.length, 0, `${missing.length} of ${expected.size} events lost`);
  assert.equal(ids.size, rows.length, "an event is in bronze twice");
  assert.equal(
    new Set(rows.map((r) => `${r[1]}/${r[2]}/${r[3]}`)).size,
    rows.length,
    "a log position is in bronze twice",
  );
  if (exact) assert.equal(rows.length, expected.size, "bronze holds events nobody sent");
  return bronze!;
}
