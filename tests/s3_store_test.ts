/**
 * {@link S3Store} against a real S3 API (s3proxy, started by `scripts/test.sh`) and, for the
 * faults a real server will not produce on demand, against a tiny fake S3 served here.
 *
 * The endpoint and keys come from the AWS SDK's variables, with s3proxy.sh's defaults:
 * AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL), AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * and S3_TEST_BUCKET (default streamgate-test). Without a server the tests fail, saying how to
 * start one; they never skip.
 */
import assert from "node:assert/strict";
import { openS3Store, parseS3Url, S3Error, type S3StoreOptions } from "../lake/storage/s3.ts";
import { StoreGoneError } from "../lake/storage/store.ts";
import { objectStoreContract } from "./object_store_contract.ts";
import { S3_TEST, S3_TEST_OPTIONS } from "./lake_store_helpers.ts";

const MiB = 1024 * 1024;
const ENV = (name: string) => Deno.env.get(name) || undefined;
const ENDPOINT = S3_TEST.endpoint;
const BUCKET = S3_TEST.bucket;
const BASE: S3StoreOptions = S3_TEST_OPTIONS;
const text = (s: string) => new TextEncoder().encode(s);

let reachable: Promise<void> | undefined;
/** Fails (once, clearly) when the S3 server is down or the test bucket is missing. */
function serverUp(): Promise<void> {
  reachable ??= (async () => {
    const store = openS3Store(`s3://${BUCKET}`, { ...BASE, retries: 1, requestTimeoutMs: 5_000 });
    try {
      await store.probe();
    } catch (error) {
      const start = "bash scripts/s3proxy.sh start && bash scripts/s3proxy.sh wait && " +
        `bash scripts/s3proxy.sh bucket ${BUCKET}`;
      throw new Error(
        `No usable S3 server at ${ENDPOINT} (bucket "${BUCKET}"): run the tests with ` +
          `\`bash scripts/test.sh tests/s3_store_test.ts\`, or start s3proxy: ${start}`,
        { cause: error },
      );
    } finally {
      await store.close();
    }
  })();
  return reachable;
}

/** A store on a fresh prefix of the test bucket, and a cleanup that deletes what is under it. */
async function freshStore(options: Partial<S3StoreOptions> = {}) {
  await serverUp();
  const url = `s3://${BUCKET}/test/${crypto.randomUUID()}`;
  const store = openS3Store(url, { ...BASE, ...options });
  const cleanup = async () => {
    await store.close();
    const admin = openS3Store(url, BASE);
    try {
      const keys: string[] = [];
      for await (const info of admin.list("")) keys.push(info.key);
      await Promise.all(keys.map((key) => admin.delete(key)));
    } finally {
      await admin.close();
    }
  };
  return { store, cleanup };
}

objectStoreContract(
  "S3Store",
  () => freshStore({ listPageSize: 4, multipartThreshold: 5 * MiB, partSize: 5 * MiB }),
  // s3proxy lists in UTF-16 order; set S3_TEST_ASTRAL_ORDER=1 against a real S3.
  { pageSize: 4, largeSize: 11 * MiB + 123, astralOrder: ENV("S3_TEST_ASTRAL_ORDER") === "1" },
);

Deno.test("parseS3Url() splits bucket and prefix, and rejects what is not s3://bucket[/prefix]", () => {
  assert.deepEqual(parseS3Url("s3://lake"), { bucket: "lake", prefix: "" });
  assert.deepEqual(parseS3Url("s3://lake/"), { bucket: "lake", prefix: "" });
  assert.deepEqual(parseS3Url("s3://lake/a/b/"), { bucket: "lake", prefix: "a/b/" });
  for (
    const bad of ["lake", "s3://", "s3:///a", "http://lake/a", "s3://lake/../a", "s3://la/a//b"]
  ) {
    assert.throws(() => parseS3Url(bad), /Invalid S3 URL/, bad);
  }
});

Deno.test("S3Store.list() goes through 1001 keys with the server's own 1000-key pages", async () => {
  const { store, cleanup } = await freshStore({ maxConcurrency: 16 });
  try {
    const keys = Array.from({ length: 1001 }, (_, i) => `many/${String(i).padStart(5, "0")}`);
    await Promise.all(keys.map((key) => store.put(key, new Uint8Array(0))));
    const listed: string[] = [];
    for await (const info of store.list("many/")) listed.push(info.key);
    assert.deepEqual(listed, keys);
  } finally {
    await cleanup();
  }
});

Deno.test("S3Store.putIfAbsent() has one winner in each of 50 rounds of 8 concurrent writers", async () => {
  // The server's guarantee, checked where the tests run: s3proxy 3.0.0 fails it (see s3proxy.sh).
  const { store, cleanup } = await freshStore();
  try {
    const counts = new Map<number, number>();
    for (let round = 0; round < 50; round++) {
      const key = `race/${round}.json`;
      const bodies = Array.from({ length: 8 }, (_, i) => text(`writer ${i} round ${round}`));
      const won = await Promise.all(bodies.map((body) => store.putIfAbsent(key, body)));
      const winners = won.flatMap((w, i) => w ? [i] : []);
      counts.set(winners.length, (counts.get(winners.length) ?? 0) + 1);
      if (winners.length === 1) assert.deepEqual(await store.get(key), bodies[winners[0]!]);
    }
    assert.deepEqual(Object.fromEntries(counts), { 1: 50 }, "rounds by number of winners");
  } finally {
    await cleanup();
  }
});

Deno.test("S3Store with a wrong secret fails at once with a clear 403 that hides the secret", async () => {
  await serverUp();
  const secret = "wrong-secret-9f8e7d";
  const store = openS3Store(`s3://${BUCKET}/x`, { ...BASE, secretAccessKey: secret });
  try {
    const started = Date.now();
    const error = await store.put("a/b.json", text("{}")).catch((e) => e);
    assert.ok(error instanceof S3Error, String(error));
    assert.equal(error.status, 403);
    assert.match(
      error.message,
      /^Cannot put object "a\/b\.json" in s3:\/\/streamgate-test\/x: HTTP 403/,
    );
    assert.match(error.message, /check the access key, secret and region/);
    assert.doesNotMatch(error.message, /attempts/, "a 403 is not retried");
    assert.ok(!JSON.stringify(error, Object.getOwnPropertyNames(error)).includes(secret));
    assert.ok(!String(error.cause).includes(secret));
    assert.ok(Date.now() - started < 5_000);
  } finally {
    await store.close();
  }
});

Deno.test("S3Store on a missing bucket rejects with StoreGoneError, not a missing object", async () => {
  await serverUp();
  const store = openS3Store(`s3://no-such-bucket-${crypto.randomUUID().slice(0, 8)}`, BASE);
  try {
    await assert.rejects(() => store.get("a"), StoreGoneError);
    await assert.rejects(() => store.put("a", text("x")), /NoSuchBucket/);
  } finally {
    await store.close();
  }
});

Deno.test("S3Store.localFile() keeps the cache within cacheBytes, evicting the least recently used", async () => {
  const cacheDir = await Deno.makeTempDir();
  const { store, cleanup } = await freshStore({ cacheDir, cacheBytes: 2500, cacheGraceMs: 0 });
  try {
    // Files the cache did not write are left alone.
    await Deno.writeFile(`${cacheDir}/${"0".repeat(64)}.parquet`, text("stale"));
    await Deno.writeFile(`${cacheDir}/notes.txt`, text("mine"));
    for (const name of ["a", "b", "c"]) {
      await store.put(`${name}.bin`, new Uint8Array(1000).fill(name.charCodeAt(0)));
    }
    const a = await store.localFile("a.bin");
    const b = await store.localFile("b.bin");
    assert.equal(await store.localFile("a.bin"), a, "a hit returns the same copy");
    const c = await store.localFile("c.bin"); // 3000 bytes > 2500: b is the least recently used
    const names = [...Deno.readDirSync(cacheDir)].map((e) => e.name).sort();
    assert.equal(names.length, 4, names.join(", ")); // + the process's directory and lock
    assert.ok(names.includes("notes.txt"));
    await assert.rejects(() => Deno.stat(b), Deno.errors.NotFound);
    assert.deepEqual(await Deno.readFile(a), new Uint8Array(1000).fill(97));
    assert.deepEqual(await Deno.readFile(c), new Uint8Array(1000).fill(99));
    assert.deepEqual(
      await Deno.readFile(await store.localFile("b.bin")),
      new Uint8Array(1000).fill(98),
    );
  } finally {
    await cleanup();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("S3Store: two processes sharing one cache directory keep their own copies; a dead one's are deleted", async () => {
  const cacheDir = await Deno.makeTempDir();
  // What a killed process leaves: its directory and an unlocked lock file, an hour old.
  const dead = `${cacheDir}/proc-${crypto.randomUUID()}`;
  await Deno.mkdir(`${dead}/objects`, { recursive: true });
  await Deno.writeFile(`${dead}/objects/x.parquet`, text("old"));
  await Deno.writeFile(`${dead}.lock`, new Uint8Array());
  const hourAgo = new Date(Date.now() - 3_600_000);
  await Deno.utime(dead, hourAgo, hourAgo);
  await Deno.utime(`${dead}.lock`, hourAgo, hourAgo);
  const one = await freshStore({ cacheDir });
  const other = openS3Store(one.store.url, { ...BASE, cacheDir });
  try {
    await one.store.put("k.bin", text("shared object"));
    const a = await one.store.localFile("k.bin");
    const b = await other.localFile("k.bin"); // the second process starts its cache here
    assert.notEqual(a, b);
    assert.deepEqual(await Deno.readFile(a), text("shared object"), "the first one's copy stays");
    await assert.rejects(() => Deno.stat(dead), Deno.errors.NotFound);
    await assert.rejects(() => Deno.stat(`${dead}.lock`), Deno.errors.NotFound);
    await other.close();
    assert.deepEqual(await Deno.readFile(a), text("shared object"));
  } finally {
    await other.close();
    await one.cleanup();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

// --- Faults, against a fake S3 -------------------------------------------------------------

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: Uint8Array<ArrayBuffer>;
}

/** A fake S3 on a free port; `answer` gets each request and how many came before it. */
function fakeS3(answer: (req: Seen, n: number) => Response | Promise<Response>) {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    const req = {
      method: request.method,
      path: decodeURIComponent(url.pathname),
      query: url.searchParams,
      headers: request.headers,
      body: new Uint8Array(await request.arrayBuffer()),
    };
    seen.push(req);
    return await answer(req, seen.length - 1);
  });
  const options: S3StoreOptions = {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    accessKeyId: "AKIDFAKE",
    secretAccessKey: "fake-secret-never-shown",
    retries: 3,
    retryBaseMs: 10,
  };
  return { seen, options, close: () => server.shutdown() };
}

const xmlError = (status: number, code: string) =>
  new Response(`<?xml version="1.0"?><Error><Code>${code}</Code><Message>m</Message></Error>`, {
    status,
  });

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("S3Store retries a 503 SlowDown and signs every request with the body's SHA-256", async () => {
  const fake = fakeS3((_, n) => n < 2 ? xmlError(503, "SlowDown") : new Response(null));
  const store = openS3Store("s3://bkt/root", fake.options);
  try {
    await store.put("k/one two.json", text("payload"));
    assert.equal(fake.seen.length, 3);
    for (const req of fake.seen) {
      assert.equal(req.method, "PUT");
      assert.equal(req.path, "/bkt/root/k/one two.json");
      assert.equal(req.headers.get("x-amz-content-sha256"), await sha256Hex(text("payload")));
      assert.match(
        req.headers.get("authorization") ?? "",
        /^AWS4-HMAC-SHA256 Credential=AKIDFAKE\//,
      );
      assert.deepEqual(req.body, text("payload"));
    }
  } finally {
    await store.close();
    await fake.close();
  }
});

Deno.test("S3Store never retries a 403, 404 or 412, and names the action and key", async () => {
  const statuses = [[403, "AccessDenied"], [400, "InvalidArgument"]] as const;
  for (const [status, code] of statuses) {
    const fake = fakeS3(() => xmlError(status, code));
    const store = openS3Store("s3://bkt", fake.options);
    try {
      await assert.rejects(() => store.put("x.json", text("{}")), (e: unknown) => {
        assert.ok(e instanceof S3Error);
        assert.equal(e.message.split(":")[0], 'Cannot put object "x.json" in s3');
        assert.match(e.message, new RegExp(`HTTP ${status} ${code}`));
        return true;
      });
      assert.equal(fake.seen.length, 1, `HTTP ${status}`);
    } finally {
      await store.close();
      await fake.close();
    }
  }
  const fake = fakeS3((req) =>
    req.method === "PUT" ? xmlError(412, "PreconditionFailed") : xmlError(404, "NoSuchKey")
  );
  const store = openS3Store("s3://bkt", fake.options);
  try {
    assert.equal(await store.putIfAbsent("log/0.json", text("x")), false);
    assert.equal(await store.get("log/1.json"), undefined);
    assert.equal(fake.seen.length, 2);
  } finally {
    await store.close();
    await fake.close();
  }
});

Deno.test("S3Store.putIfAbsent() retries a 409 ConditionalRequestConflict", async () => {
  const fake = fakeS3((_, n) =>
    n === 0 ? xmlError(409, "ConditionalRequestConflict") : new Response(null)
  );
  const store = openS3Store("s3://bkt", fake.options);
  try {
    assert.equal(await store.putIfAbsent("log/0.json", text("x")), true);
    assert.equal(fake.seen.length, 2);
    assert.equal(fake.seen[1]?.headers.get("if-none-match"), "*");
  } finally {
    await store.close();
    await fake.close();
  }
});

Deno.test("S3Store.putIfAbsent() whose answer was lost counts a 412 over its own bytes as created", async () => {
  // The first PUT creates the object but its answer fails; the retry then finds the key taken.
  let stored: Uint8Array<ArrayBuffer> | undefined;
  const fake = fakeS3((req) => {
    if (req.method === "GET") return stored ? new Response(stored) : xmlError(404, "NoSuchKey");
    if (stored) return xmlError(412, "PreconditionFailed");
    stored = req.body;
    return xmlError(500, "InternalError");
  });
  const store = openS3Store("s3://bkt", fake.options);
  try {
    assert.equal(await store.putIfAbsent("log/0.json", text("mine")), true);
    assert.equal(await store.putIfAbsent("log/0.json", text("other")), false);
    assert.deepEqual(fake.seen.map((r) => r.method), ["PUT", "PUT", "GET", "PUT"]);
  } finally {
    await store.close();
    await fake.close();
  }
});

Deno.test("S3Store against an unreachable endpoint fails after bounded retries and time", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens there now
  const secret = "unreachable-secret-4c3b";
  const store = openS3Store("s3://bkt/p", {
    endpoint: `http://127.0.0.1:${port}`,
    accessKeyId: "AKID",
    secretAccessKey: secret,
    retries: 3,
    retryBaseMs: 50,
    requestTimeoutMs: 2_000,
  });
  try {
    const started = Date.now();
    const error = await store.get("x/y.parquet").catch((e) => e);
    const ms = Date.now() - started;
    assert.ok(error instanceof Error);
    assert.match(
      error.message,
      new RegExp(
        `^Cannot read object "x/y\\.parquet" in s3://bkt/p: no answer from http://127\\.0\\.0\\.1:${port} \\(4 attempts in [0-9.]+ s\\)`,
      ),
    );
    assert.ok(error.cause, "the lower error is kept as the cause");
    assert.ok(!error.message.includes(secret));
    assert.ok(ms < 3_000, `took ${ms} ms`);
  } finally {
    await store.close();
  }
});

Deno.test("S3Store gives up on a server that never answers after its timeout per attempt", async () => {
  const hang = Promise.withResolvers<Response>();
  const fake = fakeS3(() => hang.promise);
  const store = openS3Store("s3://bkt", { ...fake.options, retries: 1, requestTimeoutMs: 300 });
  try {
    const started = Date.now();
    await assert.rejects(
      () => store.head("k"),
      /no answer .*\(2 attempts in .*no answer within 300 ms/,
    );
    const ms = Date.now() - started;
    assert.ok(ms >= 600 && ms < 2_000, `took ${ms} ms`);
    assert.equal(fake.seen.length, 2);
  } finally {
    hang.resolve(new Response(null));
    await store.close();
    await fake.close();
  }
});

Deno.test("S3Store.put() aborts the multipart upload when a part fails", async () => {
  const fake = fakeS3((req) => {
    if (req.method === "POST" && req.query.has("uploads")) {
      return new Response(
        "<InitiateMultipartUploadResult><UploadId>up&amp;1</UploadId></InitiateMultipartUploadResult>",
      );
    }
    if (req.method === "PUT" && req.query.get("partNumber") === "2") {
      return xmlError(403, "AccessDenied");
    }
    if (req.method === "PUT") return new Response(null, { headers: { etag: '"e1"' } });
    return new Response(null, { status: 204 });
  });
  const options = {
    ...fake.options,
    multipartThreshold: 5 * MiB,
    partSize: 5 * MiB,
    maxConcurrency: 1,
  };
  const store = openS3Store("s3://bkt", options);
  try {
    await assert.rejects(
      () => store.put("big.bin", new Uint8Array(10 * MiB + 1)),
      /^S3Error: Cannot put part 2 of 3 of object "big\.bin" in s3:\/\/bkt: HTTP 403 AccessDenied/,
    );
    const calls = fake.seen.map((r) => `${r.method} ${r.query.get("partNumber") ?? ""}`);
    assert.deepEqual(calls, ["POST ", "PUT 1", "PUT 2", "DELETE "]);
    assert.equal(fake.seen[3]?.query.get("uploadId"), "up&1");
  } finally {
    await store.close();
    await fake.close();
  }
});

Deno.test("S3Store.put() retries a CompleteMultipartUpload answered 200 with an InternalError", async () => {
  let completes = 0;
  const fake = fakeS3((req) => {
    if (req.query.has("uploads")) return new Response("<R><UploadId>u</UploadId></R>");
    if (req.method === "PUT") {
      return new Response(null, { headers: { etag: `"p${req.query.get("partNumber")}"` } });
    }
    completes++;
    const body = completes === 1
      ? "<Error><Code>InternalError</Code></Error>"
      : "<CompleteMultipartUploadResult/>";
    return new Response(body);
  });
  const store = openS3Store("s3://bkt", {
    ...fake.options,
    multipartThreshold: 5 * MiB,
    partSize: 5 * MiB,
  });
  try {
    await store.put("big.bin", new Uint8Array(5 * MiB + 1));
    assert.equal(completes, 2);
    const complete = new TextDecoder().decode(fake.seen.at(-1)?.body);
    assert.match(
      complete,
      /<Part><PartNumber>1<\/PartNumber><ETag>&quot;p1&quot;<\/ETag><\/Part><Part><PartNumber>2</,
    );
  } finally {
    await store.close();
    await fake.close();
  }
});

Deno.test("S3Store.put() takes a NoSuchUpload after a lost CompleteMultipartUpload as done", async () => {
  // The first complete succeeds but its answer fails; the retry finds the upload gone.
  let completed = 0;
  const fake = fakeS3((req) => {
    if (req.query.has("uploads")) return new Response("<R><UploadId>u</UploadId></R>");
    if (req.method === "PUT") return new Response(null, { headers: { etag: '"p"' } });
    if (req.method === "HEAD") {
      return new Response(null, { headers: { "content-length": String(completed) } });
    }
    if (completed) return xmlError(404, "NoSuchUpload");
    completed = 5 * MiB + 1;
    return xmlError(500, "InternalError");
  });
  const options = { ...fake.options, multipartThreshold: 5 * MiB, partSize: 5 * MiB };
  const store = openS3Store("s3://bkt", options);
  try {
    await store.put("big.bin", new Uint8Array(5 * MiB + 1));
    const calls = fake.seen.map((r) => r.method);
    assert.deepEqual(calls, ["POST", "PUT", "PUT", "POST", "POST", "HEAD"]);
  } finally {
    await store.close();
    await fake.close();
  }
});

Deno.test("S3Store.list() decodes XML entities and url-encoded keys and follows continuation tokens", async () => {
  const page = (contents: string[], extra: string) =>
    new Response(
      `<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
        contents.map((k) =>
          `<Contents><Key>${k}</Key><Size>3</Size><LastModified>2026-01-02T03:04:05.000Z</LastModified></Contents>`
        ).join("") +
        `${extra}</ListBucketResult>`,
    );
  const fake = fakeS3((_, n) =>
    n === 0
      ? page(
        ["r/p/&lt;c&gt;", "r/p/a&amp;b"],
        "<IsTruncated>true</IsTruncated><NextContinuationToken>t&amp;1</NextContinuationToken>",
      )
      : page(
        ["r/p/d%20e+f%2B", "r/p/%F0%9F%98%80"],
        "<EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>",
      )
  );
  const store = openS3Store("s3://bkt/r", fake.options);
  try {
    const listed = [];
    for await (const info of store.list("p/", { startAfter: "p/0" })) listed.push(info);
    assert.deepEqual(listed.map((i) => i.key), ["p/<c>", "p/a&b", "p/d e f+", "p/😀"]);
    assert.equal(listed[0]?.mtimeMs, Date.UTC(2026, 0, 2, 3, 4, 5));
    assert.equal(fake.seen[0]?.query.get("prefix"), "r/p/");
    assert.equal(fake.seen[0]?.query.get("start-after"), "r/p/0");
    assert.equal(fake.seen[1]?.query.get("continuation-token"), "t&1");
  } finally {
    await store.close();
    await fake.close();
  }
});

Deno.test("S3Store.list() rejects a server listing that is out of UTF-8 order", async () => {
  const fake = fakeS3(() =>
    new Response(
      "<ListBucketResult><Contents><Key>b</Key><Size>1</Size></Contents>" +
        "<Contents><Key>a</Key><Size>1</Size></Contents><IsTruncated>false</IsTruncated></ListBucketResult>",
    )
  );
  const store = openS3Store("s3://bkt", fake.options);
  try {
    const seen: string[] = [];
    await assert.rejects(async () => {
      for await (const info of store.list("")) seen.push(info.key);
    }, /listed "a" after "b", not in ascending UTF-8 order/);
    assert.deepEqual(seen, ["b"]);
  } finally {
    await store.close();
    await fake.close();
  }
});

Deno.test("S3Store.localFile() downloads an object once for concurrent callers", async () => {
  const fake = fakeS3(async (req) => {
    if (req.method !== "GET") return new Response(null);
    await new Promise((resolve) => setTimeout(resolve, 50));
    return new Response(text("parquet bytes"));
  });
  const store = openS3Store("s3://bkt", fake.options);
  try {
    const paths = await Promise.all(
      Array.from({ length: 10 }, () => store.localFile("t/f.parquet")),
    );
    assert.equal(new Set(paths).size, 1);
    assert.ok(paths[0]!.endsWith(".parquet"));
    assert.deepEqual(await Deno.readFile(paths[0]!), text("parquet bytes"));
    assert.equal(fake.seen.length, 1);
  } finally {
    await store.close();
    await fake.close();
  }
});
