/**
 * The settings of {@link ../storage/s3.ts}'s `S3Store`: the options a caller gives (read from its
 * environment), their defaults and their checks, and the store's `s3://bucket/prefix` URL.
 *
 * @module
 */
import { checkKey } from "./store.ts";

const MiB = 1024 * 1024;
/** S3's smallest part (all but the last) and largest single PUT. */
export const MIN_PART_BYTES = 5 * MiB;
export const MAX_SINGLE_PUT_BYTES = 5 * 1024 * MiB;

/** Options of `openS3Store()`; the caller reads them from its environment. */
export interface S3StoreOptions {
  /**
   * The S3 API, e.g. `http://127.0.0.1:9000` (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`).
   * @default `https://s3.<region>.amazonaws.com`
   */
  endpoint?: string | undefined;
  /** Region the requests are signed for (`AWS_REGION`). @default "us-east-1" */
  region?: string | undefined;
  /** `AWS_ACCESS_KEY_ID`. */
  accessKeyId: string;
  /** `AWS_SECRET_ACCESS_KEY`; never appears in an error or `url`. */
  secretAccessKey: string;
  /** `AWS_SESSION_TOKEN`, for temporary credentials. */
  sessionToken?: string | undefined;
  /** Bucket in the path (`endpoint/bucket/key`), not the host. @default true but on AWS */
  pathStyle?: boolean | undefined;
  /** One attempt's time limit, not counting its body's transfer time. @default 30_000 */
  requestTimeoutMs?: number | undefined;
  /** A body of n bytes adds n / this seconds to an attempt's time limit. @default 1 MiB/s */
  minBytesPerSecond?: number | undefined;
  /** Retries of a failure that may pass (`retries + 1` attempts at most). @default 4 */
  retries?: number | undefined;
  /** First retry's backoff ceiling (ms); it doubles per retry, the wait is random below. @default 100 */
  retryBaseMs?: number | undefined;
  /** Largest backoff ceiling (ms). @default 5_000 */
  retryMaxMs?: number | undefined;
  /** Requests in flight at once. @default 8 */
  maxConcurrency?: number | undefined;
  /** Objects larger than this go up in parts (multipart upload). @default 32 MiB */
  multipartThreshold?: number | undefined;
  /** Size of each part but the last (at least 5 MiB). @default 8 MiB */
  partSize?: number | undefined;
  /** Keys per ListObjectsV2 page (1–1000). @default 1000 */
  listPageSize?: number | undefined;
  /** Directory of `localFile()` copies (`LAKE_CACHE_DIR`). @default a new temporary directory */
  cacheDir?: string | undefined;
  /** Bytes of `localFile()` copies kept (`LAKE_CACHE_BYTES`). @default 1 GiB */
  cacheBytes?: number | undefined;
  /** A `localFile()` copy handed out this recently (ms) is never evicted. @default 10_000 */
  cacheGraceMs?: number | undefined;
}

type Optional = "endpoint" | "sessionToken" | "pathStyle" | "cacheDir";
/** {@link S3StoreOptions} with every default filled in. */
export type S3Settings = {
  [K in Exclude<keyof S3StoreOptions, Optional>]-?: NonNullable<S3StoreOptions[K]>;
};

/** The options with their defaults, checked; throws on a value the store cannot work with. */
export function s3Settings(o: S3StoreOptions): S3Settings {
  const s: S3Settings = {
    region: o.region ?? "us-east-1",
    accessKeyId: o.accessKeyId,
    secretAccessKey: o.secretAccessKey,
    requestTimeoutMs: o.requestTimeoutMs ?? 30_000,
    minBytesPerSecond: o.minBytesPerSecond ?? MiB,
    retries: o.retries ?? 4,
    retryBaseMs: o.retryBaseMs ?? 100,
    retryMaxMs: o.retryMaxMs ?? 5_000,
    maxConcurrency: o.maxConcurrency ?? 8,
    multipartThreshold: o.multipartThreshold ?? 32 * MiB,
    partSize: o.partSize ?? 8 * MiB,
    listPageSize: o.listPageSize ?? 1000,
    cacheBytes: o.cacheBytes ?? 1024 * MiB,
    cacheGraceMs: o.cacheGraceMs ?? 10_000,
  };
  for (const name of ["requestTimeoutMs", "minBytesPerSecond", "maxConcurrency"] as const) {
    if (!(s[name] > 0)) throw new Error(`Invalid S3 store option ${name}: ${s[name]}`);
  }
  for (
    const name of ["retries", "retryBaseMs", "retryMaxMs", "cacheBytes", "cacheGraceMs"] as const
  ) {
    if (!(s[name] >= 0)) throw new Error(`Invalid S3 store option ${name}: ${s[name]}`);
  }
  if (!(s.partSize >= MIN_PART_BYTES)) {
    throw new Error(`Invalid S3 store option partSize: ${s.partSize} is under 5 MiB`);
  }
  if (!(s.multipartThreshold >= s.partSize && s.multipartThreshold <= MAX_SINGLE_PUT_BYTES)) {
    throw new Error(
      `Invalid S3 store option multipartThreshold: ${s.multipartThreshold} is not between partSize and 5 GiB`,
    );
  }
  if (!(Number.isInteger(s.listPageSize) && s.listPageSize >= 1 && s.listPageSize <= 1000)) {
    throw new Error(`Invalid S3 store option listPageSize: ${s.listPageSize} is not in 1–1000`);
  }
  if (!s.accessKeyId || !s.secretAccessKey) throw new Error("Missing S3 access key id or secret");
  return s;
}

/** Parses `s3://bucket[/prefix]` into the bucket and a key prefix that is empty or ends in `/`. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/?#]+)(?:\/([^?#]*))?$/.exec(url);
  const bucket = match?.[1] ?? "";
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/.test(bucket)) {
    throw new Error(`Invalid S3 URL "${url}": expected s3://bucket or s3://bucket/prefix`);
  }
  const path = (match?.[2] ?? "").replace(/\/+$/, "");
  try {
    return { bucket, prefix: path === "" ? "" : `${checkKey(path)}/` };
  } catch (error) {
    throw new Error(`Invalid S3 URL "${url}": bad prefix "${path}"`, { cause: error });
  }
}
