// Tests of reading request bodies: JSON / NDJSON parsing, error positions, limits, gzip.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import {
  type BodyLimits,
  checkDepth,
  decodeUtf8,
  isNdjson,
  locateJsonError,
  parseBody,
  readBody,
} from "./body.ts";
import { type BodyItem } from "../pipeline/ingest.ts";
import { InvalidBodyError, LimitExceededError, UnsupportedContentError } from "../shared/errors.ts";

const LIMITS: BodyLimits = { maxBytes: 1 << 20, maxEvents: 100, maxDepth: 8 };

function values(items: BodyItem[]): unknown[] {
  return items.map((item) => {
    assert.ok(item.ok, `expected a parsed item, got ${JSON.stringify(item)}`);
    return item.value;
  });
}

/** Asserts that `fn` throws an InvalidBodyError located at `line`:`column`. */
function assertJsonErrorAt(text: string, line: number, column: number): void {
  assert.throws(
    () => parseBody(text, false, LIMITS),
    (err: unknown) => {
      assert.ok(err instanceof InvalidBodyError, `expected InvalidBodyError, got ${err}`);
      assert.deepEqual(err.where, { line, column });
      assert.match(err.message, new RegExp(`line ${line}, column ${column}`));
      return true;
    },
  );
}

function isLimit(limit: string) {
  return (err: unknown) => {
    assert.ok(err instanceof LimitExceededError, `expected LimitExceededError, got ${err}`);
    assert.equal(err.limit, limit);
    return true;
  };
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function post(body: BodyInit | Uint8Array | null, headers: Record<string, string> = {}): Request {
  return new Request("http://gateway.test/events", {
    method: "POST",
    body: body as BodyInit | null,
    headers,
  });
}

const encoder = new TextEncoder();

Deno.test("parseBody() reads one JSON object as one item with the body as raw text", () => {
  const text = ' {"type":"login","user_id":"u1"} ';
  const items = parseBody(text, false, LIMITS);
  assert.deepEqual(items, [{ ok: true, value: { type: "login", user_id: "u1" }, raw: text }]);
});

Deno.test("parseBody() reads a JSON array as one item per element", () => {
  const items = parseBody('[{"a":1}, {"b":[2,3]}, "x"]', false, LIMITS);
  assert.deepEqual(values(items), [{ a: 1 }, { b: [2, 3] }, "x"]);
  assert.deepEqual(items.map((i) => i.raw), ['{"a":1}', '{"b":[2,3]}', '"x"']);
});

Deno.test("parseBody() reads NDJSON line by line", async (t) => {
  await t.step("LF line ends", () => {
    const items = parseBody('{"a":1}\n{"a":2}\n', true, LIMITS);
    assert.deepEqual(values(items), [{ a: 1 }, { a: 2 }]);
  });
  await t.step("CRLF line ends are stripped from the raw text", () => {
    const items = parseBody('{"a":1}\r\n{"a":2}\r\n', true, LIMITS);
    assert.deepEqual(values(items), [{ a: 1 }, { a: 2 }]);
    assert.deepEqual(items.map((i) => i.raw), ['{"a":1}', '{"a":2}']);
  });
  await t.step("blank and whitespace-only lines are skipped", () => {
    const items = parseBody('\n{"a":1}\n\n   \r\n{"a":2}', true, LIMITS);
    assert.deepEqual(values(items), [{ a: 1 }, { a: 2 }]);
  });
  await t.step("a body of blank lines only is an InvalidBodyError", () => {
    assert.throws(() => parseBody("\n \r\n", true, LIMITS), InvalidBodyError);
  });
});

Deno.test("parseBody() turns a bad NDJSON line into a failed item with its line number", () => {
  const items = parseBody('{"a":1}\n\n{"a":\n{"a":3}\n', true, LIMITS);
  assert.equal(items.length, 3);
  assert.deepEqual(items[0], { ok: true, value: { a: 1 }, raw: '{"a":1}' });
  const bad = items[1]!;
  assert.equal(bad.ok, false);
  assert.equal(bad.raw, '{"a":');
  assert.ok(!bad.ok);
  // Line 3 of the body (the blank line 2 still counts), column 6 (end of input).
  assert.match(bad.message, /NDJSON line 3, column 6/);
  assert.deepEqual(items[2], { ok: true, value: { a: 3 }, raw: '{"a":3}' });
});

Deno.test("parseBody() rejects an empty JSON body with InvalidBodyError", () => {
  assert.throws(() => parseBody("  \n ", false, LIMITS), InvalidBodyError);
});

Deno.test("parseBody() reports line and column of a JSON syntax error", async (t) => {
  await t.step("trailing comma in an object", () => assertJsonErrorAt('{"a":1,}', 1, 8));
  await t.step("trailing comma in an array", () => assertJsonErrorAt("[1,2,]", 1, 6));
  await t.step("garbage after the value", () => assertJsonErrorAt('{"a":1} x', 1, 9));
  await t.step("unterminated string", () => assertJsonErrorAt('{"a":"abc', 1, 10));
  await t.step("missing colon", () => assertJsonErrorAt('{"a" 1}', 1, 6));
  await t.step("single-quoted key", () => assertJsonErrorAt("{'a':1}", 1, 2));
  await t.step("bad literal on line 3 of a multi-line body", () => {
    assertJsonErrorAt('{\n  "a": 1,\n  "b": tru\n}', 3, 8);
  });
  await t.step("missing close bracket, CRLF lines", () => {
    assertJsonErrorAt('[\r\n{"a":1},\r\n{"a":2}\r\n', 4, 1);
  });
  await t.step("an error inside a nested value on line 2", () => {
    assertJsonErrorAt('[{"a":[1,2]},\n {"b":{"c":01}}]', 2, 13);
  });
});

Deno.test("locateJsonError() describes what it found", () => {
  assert.deepEqual(locateJsonError('{"a":1,}'), {
    line: 1,
    column: 8,
    message: 'expected a property name in double quotes, found "}"',
  });
  assert.equal(locateJsonError('["a\\x"]').message, "bad escape in string");
  assert.equal(locateJsonError('["\\u12G4"]').message, "bad \\u escape in string");
  assert.equal(locateJsonError('["a\tb"]').message, "control character in string");
});

Deno.test("locateJsonError() never throws and never overflows on 100k nested brackets", () => {
  const deep = "[".repeat(100_000);
  const at = locateJsonError(deep);
  assert.deepEqual(at, { line: 1, column: 100_001, message: "unexpected end of input" });
  const deepObjects = '{"a":'.repeat(100_000);
  assert.equal(locateJsonError(deepObjects).column, 500_001);
  // Balanced but with an error at the very bottom.
  const bottom = "[".repeat(100_000) + "x" + "]".repeat(100_000);
  assert.deepEqual(locateJsonError(bottom), {
    line: 1,
    column: 100_001,
    message: 'unexpected "x"',
  });
});

Deno.test("locateJsonError() never throws on arbitrary text", () => {
  for (const text of ["", "]", "}", ",", '"', "\\", "-", "1e", "nul", "{,}", "[1 2]", "\uFEFF{}"]) {
    const at = locateJsonError(text);
    assert.ok(at.line >= 1 && at.column >= 1, `${JSON.stringify(text)} → ${JSON.stringify(at)}`);
  }
});

Deno.test("checkDepth() counts only structural brackets", async (t) => {
  await t.step("brackets inside a string are text", () => {
    checkDepth('{"a":"[[[[[["}', 1, 0);
    checkDepth('{"a":"{{{{{{{{"}', 1, 0);
  });
  await t.step("an escaped quote does not end the string", () => {
    checkDepth('{"a":"\\"[[[[[["}', 1, 0);
    checkDepth('{"a":"\\\\"}', 1, 0);
  });
  await t.step("an escaped backslash before the closing quote ends the string", () => {
    // The string is `\`; the brackets after it are structure: depth 3.
    assert.throws(() => checkDepth('{"a":"\\\\","b":[[1]]}', 2, 0), isLimit("json_depth"));
    checkDepth('{"a":"\\\\","b":[[1]]}', 3, 0);
  });
  await t.step("depth at the limit passes, one more fails", () => {
    checkDepth("[[[1]]]", 3, 0);
    assert.throws(() => checkDepth("[[[[1]]]]", 3, 0), isLimit("json_depth"));
  });
  await t.step("siblings do not add up", () => {
    checkDepth("[[1],[2],[3],{}]", 2, 0);
  });
  await t.step("the NDJSON line number is named in the message", () => {
    assert.throws(() => checkDepth("[[[1]]]", 2, 7), /NDJSON line 7/);
  });
});

Deno.test("parseBody() rejects nesting deeper than maxDepth with LimitExceededError", async (t) => {
  const limits = { ...LIMITS, maxDepth: 3 };
  await t.step("JSON body", () => {
    parseBody('[{"a":[1]}]', false, limits);
    assert.throws(() => parseBody('[{"a":[[1]]}]', false, limits), isLimit("json_depth"));
  });
  await t.step("NDJSON line (the batch counts as one level)", () => {
    parseBody('{"a":[1]}', true, limits);
    assert.throws(() => parseBody('{"a":[[1]]}\n', true, limits), isLimit("json_depth"));
  });
  await t.step("100k nested brackets fail fast, before JSON.parse", () => {
    assert.throws(() => parseBody("[".repeat(100_000), false, limits), isLimit("json_depth"));
    assert.throws(() => parseBody("[".repeat(100_000), true, limits), isLimit("json_depth"));
  });
});

Deno.test("parseBody() rejects more than maxEvents events with LimitExceededError", async (t) => {
  const limits = { ...LIMITS, maxEvents: 3 };
  await t.step("JSON array", () => {
    assert.equal(parseBody("[1,2,3]", false, limits).length, 3);
    assert.throws(() => parseBody("[1,2,3,4]", false, limits), isLimit("events"));
  });
  await t.step("NDJSON", () => {
    assert.equal(parseBody("1\n2\n\n3\n", true, limits).length, 3);
    assert.throws(() => parseBody("1\n2\n3\n4", true, limits), isLimit("events"));
  });
  await t.step("NDJSON lines that fail to parse count too", () => {
    assert.throws(() => parseBody("1\n{\n{\n{", true, limits), isLimit("events"));
  });
});

Deno.test("isNdjson() tells NDJSON from JSON by Content-Type", async (t) => {
  await t.step("NDJSON types", () => {
    for (
      const type of [
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "Application/X-NDJSON; charset=utf-8",
      ]
    ) {
      assert.equal(isNdjson(type), true, type);
    }
  });
  await t.step("JSON types", () => {
    for (
      const type of [
        "application/json",
        "application/json; charset=utf-8",
        "text/json",
        "application/cloudevents+json",
      ]
    ) {
      assert.equal(isNdjson(type), false, type);
    }
  });
  await t.step("missing or empty Content-Type reads as JSON", () => {
    assert.equal(isNdjson(null), false);
    assert.equal(isNdjson(""), false);
  });
  await t.step("other types are UnsupportedContentError", () => {
    for (const type of ["text/plain", "application/xml", "multipart/form-data; boundary=x"]) {
      assert.throws(() => isNdjson(type), UnsupportedContentError, type);
    }
  });
});

Deno.test("readBody() reads a plain body", async () => {
  const bytes = await readBody(post('{"a":1}'), 1024);
  assert.equal(new TextDecoder().decode(bytes), '{"a":1}');
});

Deno.test("readBody() reads an empty or missing body as no bytes", async () => {
  assert.equal((await readBody(post(null), 1024)).byteLength, 0);
  assert.equal((await readBody(new Request("http://gateway.test/"), 1024)).byteLength, 0);
});

Deno.test("readBody() joins a body sent in several chunks", async () => {
  const parts = ["[1,", "2,", "3]"];
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const p of parts) controller.enqueue(encoder.encode(p));
      controller.close();
    },
  });
  const bytes = await readBody(post(stream), 1024);
  assert.equal(new TextDecoder().decode(bytes), "[1,2,3]");
});

Deno.test("readBody() decompresses gzip", async (t) => {
  const text = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ i, type: "login" })));
  const gz = await gzip(encoder.encode(text));
  for (const encoding of ["gzip", "x-gzip", " GZIP "]) {
    await t.step(`Content-Encoding "${encoding}"`, async () => {
      const bytes = await readBody(post(gz, { "content-encoding": encoding }), 1 << 20);
      assert.equal(new TextDecoder().decode(bytes), text);
    });
  }
});

Deno.test("readBody() rejects a Content-Length over the limit before reading", async () => {
  const req = post("x".repeat(2000), { "content-length": "2000" });
  await assert.rejects(readBody(req, 1024), (err: unknown) => {
    assert.ok(isLimit("body_bytes")(err));
    assert.match((err as Error).message, /larger than 1024 bytes$/);
    return true;
  });
  assert.equal(req.bodyUsed, false, "the body must not be read");
});

Deno.test("readBody() stops a stream over the limit without Content-Length", async () => {
  let pulled = 0;
  let cancelled = false;
  const chunk = new Uint8Array(1024);
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled += chunk.byteLength;
      controller.enqueue(chunk.slice());
    },
    cancel() {
      cancelled = true;
    },
  });
  const req = post(endless);
  assert.equal(req.headers.get("content-length"), null);
  await assert.rejects(readBody(req, 10 * 1024), isLimit("body_bytes"));
  // The source is cancelled, not drained: only a few chunks past the limit were ever pulled.
  await new Promise((r) => setTimeout(r, 0));
  assert.ok(cancelled, "the endless source must be cancelled");
  assert.ok(pulled <= 20 * 1024, `pulled ${pulled} bytes of an endless stream`);
});

Deno.test("readBody() rejects a gzip bomb after decompression", async () => {
  const bomb = await gzip(new Uint8Array(50 * 1024 * 1024));
  assert.ok(bomb.byteLength < 100 * 1024, `bomb is ${bomb.byteLength} bytes compressed`);
  await assert.rejects(
    readBody(post(bomb, { "content-encoding": "gzip" }), 1 << 20),
    (err: unknown) => {
      assert.ok(isLimit("body_bytes")(err));
      assert.match((err as Error).message, /after decompression/);
      return true;
    },
  );
});

Deno.test("readBody() applies the limit to compressed bytes too", async () => {
  // Random bytes do not compress: the compressed body itself is over the limit.
  const noise = crypto.getRandomValues(new Uint8Array(4096));
  const gz = await gzip(noise);
  await assert.rejects(
    readBody(post(gz, { "content-encoding": "gzip" }), 2048),
    (err: unknown) => {
      assert.ok(isLimit("body_bytes")(err));
      assert.doesNotMatch((err as Error).message, /after decompression/);
      return true;
    },
  );
});

Deno.test("readBody() rejects an unsupported Content-Encoding", async (t) => {
  for (const encoding of ["br", "deflate", "compress"]) {
    await t.step(encoding, async () => {
      await assert.rejects(
        readBody(post("{}", { "content-encoding": encoding }), 1024),
        (err: unknown) => {
          assert.ok(err instanceof UnsupportedContentError);
          assert.match(err.message, new RegExp(`"${encoding}"`));
          return true;
        },
      );
    });
  }
});

Deno.test("readBody() rejects corrupt gzip with InvalidBodyError", async (t) => {
  await t.step("not gzip at all", async () => {
    await assert.rejects(
      readBody(post('{"a":1}', { "content-encoding": "gzip" }), 1024),
      InvalidBodyError,
    );
  });
  await t.step("gzip cut short", async () => {
    const gz = await gzip(encoder.encode(JSON.stringify({ a: "x".repeat(5000) })));
    await assert.rejects(
      readBody(post(gz.subarray(0, gz.byteLength - 10), { "content-encoding": "gzip" }), 1 << 20),
      InvalidBodyError,
    );
  });
  await t.step("gzip with a flipped byte in the data", async () => {
    const gz = await gzip(encoder.encode(JSON.stringify({ a: "hello ".repeat(500) })));
    const bad = gz.slice();
    bad[bad.byteLength - 6]! ^= 0xff; // inside the CRC32 trailer
    await assert.rejects(
      readBody(post(bad, { "content-encoding": "gzip" }), 1 << 20),
      InvalidBodyError,
    );
  });
});

Deno.test("decodeUtf8() decodes valid UTF-8", () => {
  assert.equal(decodeUtf8(encoder.encode('{"name":"Zoë 日本 🎉"}')), '{"name":"Zoë 日本 🎉"}');
});

Deno.test("decodeUtf8() rejects invalid UTF-8 with InvalidBodyError", async (t) => {
  const cases: Record<string, number[]> = {
    "bytes 0xff 0xfe": [0xff, 0xfe],
    "a lone continuation byte": [0x7b, 0x80, 0x7d],
    "a truncated multi-byte sequence": [0x22, 0xe6, 0x97],
    "an overlong encoding": [0xc0, 0xaf],
  };
  for (const [name, bytes] of Object.entries(cases)) {
    await t.step(name, () => {
      assert.throws(() => decodeUtf8(new Uint8Array(bytes)), (err: unknown) => {
        assert.ok(err instanceof InvalidBodyError);
        assert.match(err.message, /UTF-8/);
        return true;
      });
    });
  }
});

Deno.test("checkDepth() answers the longest top-level array element, which bounds its rewrite", () => {
  const text = '[{"a":1}, {"b":"x,y]"} ,[1,[2]], 1e20]';
  const longest = checkDepth(text, 8, 0);
  const items = parseBody(text, false, LIMITS);
  for (const item of items) {
    // Each element's re-serialised dead-letter text fits the bound parseBody derives from it.
    assert.ok(item.ok && item.raw.length * 3 <= (item.rawBytesAtMost ?? 0), item.raw);
    assert.ok(item.raw.length <= longest * 6);
  }
  assert.deepEqual(items.map((i) => i.raw), [
    '{"a":1}',
    '{"b":"x,y]"}',
    "[1,[2]]",
    "100000000000000000000",
  ]);
  assert.equal(checkDepth('{"a":[1,2]}', 8, 0), 11); // no array: the whole text
});
