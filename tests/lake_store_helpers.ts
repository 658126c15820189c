/**
 * A test lake on either store: a directory on local disk, or a fresh prefix of the test bucket on
 * the S3 server `scripts/test.sh` runs (s3proxy). The S3 endpoint and keys come from the AWS SDK's
 * variables test.sh exports (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_REGION,
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_TEST_BUCKET), with s3proxy.sh's defaults.
 *
 * @module
 */
import { join } from "node:path";
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
