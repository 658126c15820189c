/**
 * {@link S3Store}: the lake's {@link ObjectStore} on an S3-compatible bucket (AWS S3, s3proxy,
 * MinIO, R2…), spoken to with `fetch` and SigV4 signatures from `aws4fetch`. The only file that
 * imports it.
 *
 * Everything is bounded: each request has a timeout, failures that may pass (no answer, 5xx, 429,
 * `SlowDown`, `RequestTimeout`, `ConditionalRequestConflict`) are retried a few times with
 * exponential backoff and full jitter, other 4xx never are, and at most `maxConcurrency` requests
 * are in flight. {@link S3Store.putIfAbsent} is one `PUT` with `If-None-Match: *`: the bucket
 * decides which of two concurrent writers wins. Large objects go up in parts (multipart upload).
 *
 * @module
 */
import { AwsClient } from "aws4fetch";
import { compareKeys } from "./key_order.ts";
import { DiskCache } from "./s3_cache.ts";
import {
  encodeSegment,
  equalBytes,
  fail,
  HttpFailure,
  readCapped,
  requestId,
  S3Error,
  Semaphore,
  sha256Hex,
  sleep,
  Transient,
} from "./s3_http.ts";
import { MAX_SINGLE_PUT_BYTES, parseS3Url, type S3Settings, s3Settings } from "./s3_options.ts";
import type { S3StoreOptions } from "./s3_options.ts";
import { completeMultipartXml, parseErrorBody, parseListPage, parseUploadId } from "./s3_xml.ts";
import {
  type ByteRange,
  checkKey,
  checkPrefix,
  checkRange,
  type ListOptions,
  type ObjectInfo,
  type ObjectStore,
  StoreGoneError,
} from "./store.ts";

export { parseS3Url, S3Error };
export type { S3StoreOptions };

/** S3's most parts of one upload. */
const MAX_PARTS = 10_000;
/** SHA-256 of no bytes: S3 wants `x-amz-content-sha256` on every request, body or not. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/** Where {@link S3Store.probe} writes; a key no table uses. */
const PROBE_PREFIX = "_probe/";

/** An {@link S3Store} on `url` (`s3://bucket/prefix`); opens no connection yet. */
export function openS3Store(url: string, options: S3StoreOptions): S3Store {
  const { bucket, prefix } = parseS3Url(url);
  return new S3Store(bucket, prefix, options);
}

/** One request: what it does (for errors), what it sends, and how its answer is read. */
interface Call<T> {
  /** "put object \"k\"": errors read "Cannot put object \"k\" in s3://…". */
  what: string;
  method: string;
  /** The object's key in the bucket (prefix included), `""` for the bucket itself. */
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Statuses besides 2xx handed to `read` instead of failing the request. */
  accept?: readonly number[];
  /** Reads the answer inside the attempt: its time counts, and a failure to read it is retried. */
  read: (res: Response, attempt: number) => Promise<T> | T;
  /** Stops the request (no retry), e.g. when another part of an upload failed. */
  signal?: AbortSignal;
}

/** See the module documentation. */
export class S3Store implements ObjectStore {
  readonly url: string;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #base: string;
  readonly #endpoint: string;
  readonly #aws: AwsClient;
  readonly #o: S3Settings;
  readonly #slots: Semaphore;
  readonly #cache: DiskCache;
  readonly #closing = new AbortController();
  #closed = false;

  /** `prefix` is empty or a valid key ending in `/`; see {@link openS3Store}. */
  constructor(bucket: string, prefix: string, options: S3StoreOptions) {
    if (prefix !== "" && !prefix.endsWith("/")) throw new Error(`Invalid S3 prefix "${prefix}"`);
    checkPrefix(prefix);
    this.#bucket = bucket;
    this.#prefix = prefix;
    this.url = `s3://${bucket}${prefix === "" ? "" : `/${prefix.slice(0, -1)}`}`;
    this.#o = s3Settings(options);
    const endpoint = new URL(options.endpoint ?? `https://s3.${this.#o.region}.amazonaws.com`);
    if (!/^https?:$/.test(endpoint.protocol) || endpoint.search || endpoint.username) {
      throw new Error(`Invalid S3 endpoint "${endpoint.origin}": expected http(s)://host[:port]`);
    }
    const path = endpoint.pathname.replace(/\/+$/, "");
    const aws = /\.amazonaws\.com(\.cn)?$/.test(endpoint.hostname);
    const pathStyle = options.pathStyle ?? (!aws || bucket.includes("."));
    this.#endpoint = endpoint.origin;
    this.#base = pathStyle
      ? `${endpoint.origin}${path}/${encodeSegment(bucket)}`
      : `${endpoint.protocol}//${bucket}.${endpoint.host}${path}`;
    this.#aws = new AwsClient({
      accessKeyId: options.accessKeyId,
      secretAccessKey: options.secretAccessKey,
      ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}),
      service: "s3",
      region: this.#o.region,
      retries: 0,
    });
    this.#slots = new Semaphore(this.#o.maxConcurrency);
    this.#cache = new DiskCache({
      dir: options.cacheDir,
      maxBytes: this.#o.cacheBytes,
      graceMs: this.#o.cacheGraceMs,
    });
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    const path = this.#path(key);
    if (data.length > this.#o.multipartThreshold) return await this.#putMultipart(key, path, data);
    await this.#send({
      what: `put object "${key}"`,
      method: "PUT",
      path,
      body: data,
      read: () => {},
    });
  }

  /**
   * One `PUT` with `If-None-Match: *`; 412 means the key was taken. When an attempt got no
   * answer, a later 412 may be the lost attempt's own object: it counts as created when the
   * object holds exactly `data` (a rival writing the very same bytes is indistinguishable).
   */
  async putIfAbsent(key: string, data: Uint8Array): Promise<boolean> {
    const path = this.#path(key);
    if (data.length > MAX_SINGLE_PUT_BYTES) {
      throw new Error(`Cannot create object "${key}" in ${this.url}: over 5 GiB`);
    }
    const created = await this.#send({
      what: `create object "${key}"`,
      method: "PUT",
      path,
      headers: { "if-none-match": "*" },
      body: data,
      accept: [412],
      read: (res, attempt) => res.status === 412 ? (attempt > 1 ? "unsure" : false) : true,
    });
    if (created !== "unsure") return created;
    const stored = await this.get(key);
    return stored !== undefined && equalBytes(stored, data);
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array | undefined> {
    const path = this.#path(key);
    if (range) checkRange(range, key);
    if (range?.length === 0) return (await this.head(key)) ? new Uint8Array(0) : undefined;
    const last = range?.length === undefined ? "" : range.offset + range.length - 1;
    const what = `read object "${key}"`;
    return await this.#send({
      what,
      method: "GET",
      path,
      headers: range ? { range: `bytes=${range.offset}-${last}` } : {},
      accept: [404, 416],
      read: async (res) => {
        if (res.status === 404) return await this.#missing(res, what);
        if (res.status === 416) return new Uint8Array(0); // the range starts past the end
        const bytes = new Uint8Array(await res.arrayBuffer());
        if (res.status !== 200 || !range) return bytes;
        // A server that ignores Range sends the whole object.
        const end = range.length === undefined ? undefined : range.offset + range.length;
        return bytes.slice(range.offset, end);
      },
    });
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    return await this.#send({
      what: `read the size of object "${key}"`,
      method: "HEAD",
      path: this.#path(key),
      accept: [404],
      read: (res) => {
        if (res.status === 404) return undefined; // a HEAD answer has no body to tell NoSuchBucket
        const size = Number(res.headers.get("content-length"));
        const mtimeMs = Date.parse(res.headers.get("last-modified") ?? "");
        if (!Number.isSafeInteger(size)) throw new Error("no Content-Length in the answer");
        return { key, size, mtimeMs: Number.isFinite(mtimeMs) ? mtimeMs : 0 };
      },
    });
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    const query: Record<string, string> = {
      "list-type": "2",
      prefix: this.#prefix + prefix,
      "max-keys": String(this.#o.listPageSize),
    };
    // No encoding-type=url: valid keys need no escaping beyond XML's, and s3proxy 4.0.0 then
    // also URL-encodes the continuation token, which it reads back unencoded (pages restart).
    if (options.startAfter !== undefined) query["start-after"] = this.#prefix + options.startAfter;
    let previous = "";
    let token: string | undefined;
    do {
      const page = await this.#send({
        what: `list objects under "${prefix}"`,
        method: "GET",
        path: "",
        query: token === undefined ? query : { ...query, "continuation-token": token },
        read: async (res) => parseListPage(await res.text()),
      });
      for (const object of page.objects) {
        // The lake relies on the order (a table's log): never pass on a server's mistake.
        if (!object.key.startsWith(query.prefix ?? "") || compareKeys(object.key, previous) <= 0) {
          throw new Error(
            `Cannot list objects under "${prefix}" in ${this.url}: the server listed "${object.key}" ` +
              `after "${previous}", not in ascending UTF-8 order under the prefix`,
          );
        }
        previous = object.key;
        yield { ...object, key: object.key.slice(this.#prefix.length) };
      }
      token = page.nextToken;
    } while (token !== undefined);
  }

  async delete(key: string): Promise<void> {
    const what = `delete object "${key}"`;
    await this.#send({
      what,
      method: "DELETE",
      path: this.#path(key),
      accept: [404],
      read: async (res) => {
        if (res.status === 404) await this.#missing(res, what);
      },
    });
  }

  async localFile(key: string): Promise<string> {
    const path = this.#path(key);
    const id = `${this.#bucket}/${path}`;
    const file = await this.#cache.file(id, id, (tmp) => this.#download(key, path, tmp));
    if (file === undefined) {
      throw new Deno.errors.NotFound(`Cannot get a local file of object "${key}" in ${this.url}`);
    }
    return file;
  }

  /** Puts, reads back and deletes a small object under `_probe/`. */
  async probe(): Promise<void> {
    const key = `${PROBE_PREFIX}${crypto.randomUUID()}`;
    const data = crypto.getRandomValues(new Uint8Array(32));
    await this.put(key, data);
    try {
      const back = await this.get(key);
      if (!back || !equalBytes(back, data)) {
        throw new Error(`Probe of ${this.url} read other bytes than it wrote to "${key}"`);
      }
    } finally {
      await this.delete(key);
    }
  }

  /** Aborts requests in flight and deletes the local copies. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort(new Error(`${this.url} is closed`));
    await this.#cache.close();
  }

  /** The object's key in the bucket; throws on an invalid or closed store's key. */
  #path(key: string): string {
    checkKey(key);
    if (this.#closed) throw new Error(`Cannot use ${this.url}: the store is closed`);
    return this.#prefix + key;
  }

  /** A 404's NoSuchKey means a missing object (`undefined`); NoSuchBucket a gone store. */
  async #missing(res: Response, what: string): Promise<undefined> {
    const code = parseErrorBody(await readCapped(res))?.code;
    if (code === "NoSuchBucket") {
      throw new StoreGoneError(`Cannot ${what} in ${this.url}: the bucket does not exist`);
    }
    return undefined;
  }

  async #putMultipart(key: string, path: string, data: Uint8Array): Promise<void> {
    const upload = `the multipart upload of object "${key}"`;
    const uploadId = await this.#send({
      what: `start ${upload}`,
      method: "POST",
      path,
      query: { uploads: "" },
      read: async (res) => parseUploadId(await res.text()),
    });
    const stop = new AbortController();
    try {
      const size = Math.max(this.#o.partSize, Math.ceil(data.length / MAX_PARTS));
      const etags: string[] = new Array(Math.ceil(data.length / size));
      let next = 0;
      // maxConcurrency workers, so only that many parts are hashed and sent at once.
      const worker = async () => {
        for (let i = next++; i < etags.length; i = next++) {
          etags[i] = await this.#send({
            what: `put part ${i + 1} of ${etags.length} of object "${key}"`,
            method: "PUT",
            path,
            query: { partNumber: String(i + 1), uploadId },
            body: data.subarray(i * size, (i + 1) * size),
            signal: stop.signal,
            read: (res) => res.headers.get("etag") ?? fail("no ETag in the answer"),
          });
        }
      };
      const workers = Math.min(this.#o.maxConcurrency, etags.length);
      await Promise.all(Array.from({ length: workers }, () => worker().catch(stopAll)));
      const answer = await this.#send({
        what: `complete ${upload}`,
        method: "POST",
        path,
        query: { uploadId },
        body: new TextEncoder().encode(completeMultipartXml(etags)),
        accept: [404],
        read: async (res, attempt) => {
          // S3 may answer 200 and then an <Error> in the body.
          const error = parseErrorBody(await res.text());
          // NoSuchUpload on a retry: the lost first attempt may have completed it.
          if (res.status === 404 && attempt > 1 && error?.code === "NoSuchUpload") return "unsure";
          if (error || res.status === 404) {
            throw new HttpFailure(
              res.status,
              error?.code ?? "",
              error?.message ?? "",
              requestId(res),
            );
          }
        },
      });
      if (answer === "unsure" && (await this.head(key))?.size !== data.length) {
        throw new Error(`Cannot complete ${upload} in ${this.url}: the upload is gone`);
      }
    } catch (error) {
      stop.abort();
      // Best effort: a bucket lifecycle rule is the backstop for uploads left behind.
      await this.#send({
        what: `abort ${upload}`,
        method: "DELETE",
        path,
        query: { uploadId },
        accept: [404],
        read: () => {},
      }).catch(() => {});
      throw error;
    }
    function stopAll(error: unknown): never {
      stop.abort();
      throw error;
    }
  }

  /** Streams the object to `tmp`; `false` when there is no such object. */
  async #download(key: string, path: string, tmp: string): Promise<boolean> {
    const what = `download object "${key}"`;
    return await this.#send({
      what,
      method: "GET",
      path,
      accept: [404],
      read: async (res) => {
        if (res.status === 404) return await this.#missing(res, what) ?? false;
        const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
        if (res.body) await res.body.pipeTo(file.writable);
        else file.close();
        const expected = res.headers.get("content-length");
        const { size } = await Deno.stat(tmp);
        if (expected !== null && Number(expected) !== size) {
          throw new Error(`got ${size} of ${expected} bytes`);
        }
        return true;
      },
    });
  }

  /** Sends `call`, retrying what may pass, and fails with an error naming the action and key. */
  async #send<T>(call: Call<T>): Promise<T> {
    if (this.#closed) throw new Error(`Cannot ${call.what} in ${this.url}: the store is closed`);
    const url = this.#requestUrl(call.path, call.query);
    const hash = call.body ? await sha256Hex(call.body) : EMPTY_SHA256;
    const started = Date.now();
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#attempt(call, url, hash, attempt);
      } catch (error) {
        const stopped = this.#closing.signal.aborted || call.signal?.aborted;
        if (!(error instanceof Transient) || attempt > this.#o.retries || stopped) {
          throw this.#failure(call, error, attempt, Date.now() - started);
        }
      }
      const ceiling = Math.min(this.#o.retryMaxMs, this.#o.retryBaseMs * 2 ** (attempt - 1));
      await sleep(Math.random() * ceiling, this.#closing.signal).catch(() => {});
    }
  }

  /** One attempt, holding a concurrency slot and bounded by the timeout, body included. */
  async #attempt<T>(call: Call<T>, url: string, hash: string, attempt: number): Promise<T> {
    await this.#slots.acquire();
    const timeout = new AbortController();
    const limit = (bytes: number) =>
      this.#o.requestTimeoutMs + bytes / this.#o.minBytesPerSecond * 1000;
    const arm = (ms: number) =>
      setTimeout(
        () => timeout.abort(new DOMException(`no answer within ${ms} ms`, "TimeoutError")),
        ms,
      );
    let timer = arm(limit(call.body?.length ?? 0));
    let res: Response | undefined;
    try {
      const signals = [timeout.signal, this.#closing.signal, ...(call.signal ? [call.signal] : [])];
      const signed = await this.#aws.sign(url, {
        method: call.method,
        headers: { ...call.headers, "x-amz-content-sha256": hash },
      });
      try {
        res = await fetch(url, {
          method: call.method,
          headers: signed.headers,
          ...(call.body ? { body: call.body as Uint8Array<ArrayBuffer> } : {}),
          signal: AbortSignal.any(signals),
        });
      } catch (error) {
        throw new Transient("no answer", { cause: error });
      }
      const length = Number(res.headers.get("content-length") ?? 0);
      if (length > 0) {
        clearTimeout(timer);
        timer = arm(limit(length));
      }
      if (res.ok || call.accept?.includes(res.status)) {
        try {
          return await call.read(res, attempt);
        } catch (error) {
          if (error instanceof HttpFailure && !error.retryable) throw error;
          if (error instanceof StoreGoneError) throw error;
          throw new Transient("the answer could not be read", { cause: error });
        }
      }
      const body = parseErrorBody(await readCapped(res));
      const failure = new HttpFailure(
        res.status,
        body?.code ?? "",
        body?.message ?? "",
        requestId(res),
      );
      throw failure.retryable ? new Transient(failure.message, { cause: failure }) : failure;
    } finally {
      clearTimeout(timer);
      if (res?.body && !res.bodyUsed) await res.body.cancel().catch(() => {});
      this.#slots.release();
    }
  }

  /** The error a failed call rejects with: the action, the key, what went wrong, no secrets. */
  #failure(call: Call<unknown>, error: unknown, attempts: number, ms: number): Error {
    const head = `Cannot ${call.what} in ${this.url}`;
    const tries = attempts > 1 ? ` (${attempts} attempts in ${(ms / 1000).toFixed(1)} s)` : "";
    if (error instanceof StoreGoneError) return error;
    const cause = error instanceof Transient && error.cause !== undefined ? error.cause : error;
    if (this.#closing.signal.aborted) return new Error(`${head}: the store is closed`, { cause });
    if (cause instanceof HttpFailure) {
      const denied = cause.status === 403 ? "; check the access key, secret and region" : "";
      return new S3Error(`${head}: ${cause.message}${tries}${denied}`, cause.status, cause.code, {
        cause,
      });
    }
    const what = error instanceof Transient ? `${error.message} from ${this.#endpoint}` : "failed";
    const detail = cause instanceof Error ? cause.message : String(cause);
    return new Error(`${head}: ${what}${tries}: ${detail}`, { cause });
  }

  #requestUrl(path: string, query: Record<string, string> = {}): string {
    const search = Object.entries(query).map(([k, v]) => `${encodeSegment(k)}=${encodeSegment(v)}`);
    const key = path === "" ? "/" : `/${path.split("/").map(encodeSegment).join("/")}`;
    return `${this.#base}${key}${search.length ? `?${search.join("&")}` : ""}`;
  }
}
