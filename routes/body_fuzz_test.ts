// Property-based tests (fast-check) of reading request bodies (body.ts): whatever the bytes, the
// reader answers with items or with one of the documented errors, and never past its limits.
//
// Runs are bounded and seeded so the suite stays fast and repeatable. A failure prints the seed
// and the shrunk counterexample; replay it with FUZZ_SEED=<seed>, or search longer with
// FUZZ_RUNS=<multiplier>.
import assert from "node:assert/strict";
import fc from "fast-check";
import { type BodyLimits, decodeUtf8, isNdjson, parseBody, readBody } from "./body.ts";
import { type BodyItem } from "../pipeline/ingest.ts";
import { InvalidBodyError, LimitExceededError, UnsupportedContentError } from "../shared/errors.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20_240_501);
const SCALE = Number(Deno.env.get("FUZZ_RUNS") ?? 1);

function runs(numRuns: number): fc.Parameters<unknown> {
  return { seed: SEED, numRuns: Math.max(1, Math.round(numRuns * SCALE)) };
}

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Arbitraries: text that is JSON, nearly JSON, or not JSON at all.

/** Pieces that matter to a JSON reader: brackets, quotes, escapes, separators, odd characters. */
const JSON_PIECES = [
  "{",
  "}",
  "[",
  "]",
  '"',
  "\\",
  '\\"',
  ",",
  ":",
  "\n",
  "\r\n",
  " ",
  "\t",
  "0",
  "-",
  "1e999",
  "-0",
  "true",
  "null",
  "nul",
  "\\u12",
  "\\ud800",
  "\\u0000",
  '"type"',
  '"login"',
  '"user_id"',
  '"__proto__"',
  "\u0000",
  "\u0001",
  "\u2028",
  "\ufeff",
  "\u00a0",
  "\ud800",
  "😀",
];

/** Any UTF-16 code unit, lone surrogates included. */
const codeUnitString = fc.string({
  unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  maxLength: 80,
});

const jsonish = fc.array(fc.constantFrom(...JSON_PIECES), { maxLength: 60 }).map((a) => a.join(""));

/** Valid JSON with one insertion or deletion somewhere. */
const mutatedJson = fc.tuple(fc.json({ maxDepth: 6 }), fc.nat(), fc.nat(4), jsonish).map(
  ([json, at, cut, insert]) => {
    const i = at % (json.length + 1);
    return json.slice(0, i) + insert + json.slice(Math.min(json.length, i + cut));
  },
);

/** Brackets nested `n` deep around a value, balanced or not. */
const nested = fc.record({
  n: fc.integer({ min: 0, max: 80 }),
  open: fc.constantFrom("[", '{"a":', '[{"b":'),
  inner: fc.constantFrom("1", '"x"', "[]", "{}", "", '"[[[["'),
  closed: fc.boolean(),
}).map(({ n, open, inner, closed }) => {
  const close = open === "[" ? "]" : open === '{"a":' ? "}" : "}]";
  return open.repeat(n) + inner + (closed ? close.repeat(n) : "");
});

/** An event-shaped object with hostile values, as JSON text. */
const eventText = fc.record({
  type: fc.oneof(fc.constantFrom("login", "purchase", "../x", ""), codeUnitString),
  user_id: codeUnitString,
  occurred_at: fc.constantFrom("2024-05-01T11:59:00Z", "1900-01-01T00:00:00Z", "x"),
  payload: fc.dictionary(codeUnitString, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }),
}).map((e) => JSON.stringify(e));

/** One JSON text of any of the kinds above. */
const anyText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 120 }),
  codeUnitString,
  jsonish,
  fc.json({ maxDepth: 8 }),
  mutatedJson,
  nested,
  eventText,
  fc.array(fc.oneof(eventText, fc.json()), { maxLength: 25 }).map((a) => `[${a.join(",")}]`),
  // Arbitrary bytes read leniently: U+FFFD where they are not UTF-8.
  fc.uint8Array({ maxLength: 200 }).map((b) => new TextDecoder().decode(b)),
);

/** NDJSON: lines of any kind, joined by LF or CRLF, with blank lines in between. */
const ndjsonText = fc.tuple(
  fc.array(fc.oneof(anyText, fc.constant(""), fc.constant("  ")), { maxLength: 30 }),
  fc.constantFrom("\n", "\r\n"),
).map(([lines, nl]) => lines.map((l) => l.replaceAll("\n", " ")).join(nl));

const limitsArb: fc.Arbitrary<BodyLimits> = fc.record({
  maxBytes: fc.constant(1 << 20),
  maxEvents: fc.integer({ min: 1, max: 20 }),
  maxDepth: fc.integer({ min: 1, max: 40 }),
});

// ---------------------------------------------------------------------------------------------
// Oracles.

/** Nesting depth of a parsed JSON value: a scalar is 0, `[]` is 1. */
function depth(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depth));
  if (v !== null && typeof v === "object") return 1 + Math.max(0, ...Object.values(v).map(depth));
  return 0;
}

function tryJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/** The documented errors of parseBody, checked for a usable message. */
function assertDocumentedError(err: unknown, text: string): InvalidBodyError | LimitExceededError {
  if (!(err instanceof InvalidBodyError || err instanceof LimitExceededError)) {
    throw new assert.AssertionError({
      message: `parseBody threw ${err} for ${JSON.stringify(text).slice(0, 200)}`,
    });
  }
  assert.ok(err.message.length > 0 && err.message.length < 300, err.message);
  if (err instanceof LimitExceededError) {
    assert.ok(["events", "json_depth"].includes(err.limit), err.limit);
  } else if (err.where) {
    assert.ok(err.where.line >= 1 && err.where.column >= 1, JSON.stringify(err.where));
    assert.match(err.message, new RegExp(`line ${err.where.line}, column ${err.where.column}`));
  }
  return err;
}

/** Items are faithful: each raw text parses back to its value. */
function assertFaithful(items: BodyItem[]): void {
  for (const item of items) {
    if (!item.ok) continue;
    const back = tryJson(item.raw);
    assert.ok(back.ok, `raw ${JSON.stringify(item.raw)} does not parse`);
    assert.equal(JSON.stringify(back.value), JSON.stringify(item.value));
  }
}

// ---------------------------------------------------------------------------------------------

Deno.test("parseBody() on arbitrary JSON text answers items within the limits or a documented error", () => {
  fc.assert(
    fc.property(anyText, limitsArb, (text, limits) => {
      let items: BodyItem[];
      try {
        items = parseBody(text, false, limits);
      } catch (err) {
        const e = assertDocumentedError(err, text);
        // The error agrees with what JSON.parse and the limits say about the text.
        const parsed = tryJson(text);
        if (e instanceof InvalidBodyError) {
          assert.ok(
            !parsed.ok || (Array.isArray(parsed.value) && parsed.value.length === 0),
            `valid JSON refused: ${e.message}`,
          );
        } else if (e.limit === "json_depth") {
          assert.ok(!parsed.ok || depth(parsed.value) > limits.maxDepth, e.message);
        } else {
          assert.ok(parsed.ok && Array.isArray(parsed.value));
          assert.ok(parsed.value.length > limits.maxEvents);
        }
        return;
      }
      const parsed = tryJson(text);
      assert.ok(parsed.ok, "parseBody accepted text that JSON.parse refuses");
      assert.ok(depth(parsed.value) <= limits.maxDepth);
      assert.ok(items.length >= 1 && items.length <= limits.maxEvents, `${items.length} items`);
      assert.ok(items.every((i) => i.ok));
      if (Array.isArray(parsed.value)) assert.equal(items.length, parsed.value.length);
      else assert.equal(items[0]!.raw, text);
      assertFaithful(items);
    }),
    runs(500),
  );
});

Deno.test("parseBody() on arbitrary NDJSON answers one item per line or a documented error", () => {
  fc.assert(
    fc.property(ndjsonText, limitsArb, (text, limits) => {
      const lines = text.split("\n").map((l) => l.replace(/\r$/, "")).filter((l) => l.trim());
      let items: BodyItem[];
      try {
        items = parseBody(text, true, limits);
      } catch (err) {
        const e = assertDocumentedError(err, text);
        if (e instanceof InvalidBodyError) assert.equal(lines.length, 0, e.message);
        else if (e.limit === "events") assert.ok(lines.length > limits.maxEvents, e.message);
        else {
          // Some line nests deeper than maxDepth - 1 (valid JSON or not).
          assert.ok(
            lines.some((l) => {
              const p = tryJson(l);
              return !p.ok || depth(p.value) > limits.maxDepth - 1;
            }),
            e.message,
          );
        }
        return;
      }
      assert.equal(items.length, lines.length);
      assert.ok(items.length <= limits.maxEvents);
      items.forEach((item, i) => {
        assert.equal(item.raw, lines[i]);
        const p = tryJson(lines[i]!);
        assert.equal(item.ok, p.ok, `line ${i}: ${JSON.stringify(lines[i])}`);
        if (item.ok) assert.ok(depth(item.value) <= limits.maxDepth - 1);
        else assert.match(item.message, /^Cannot parse NDJSON line \d+, column \d+: ./);
      });
      assertFaithful(items);
    }),
    runs(400),
  );
});

Deno.test("parseBody() refuses nesting past maxDepth before parsing, however deep", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 200_000 }),
      fc.constantFrom("[", '{"a":', ' [ {"k" : '),
      fc.boolean(),
      (maxDepth, extra, open, ndjson) => {
        const text = open.repeat(maxDepth + extra);
        assert.throws(
          () => parseBody(text, ndjson, { maxBytes: 1 << 30, maxEvents: 10, maxDepth }),
          (err: unknown) => err instanceof LimitExceededError && err.limit === "json_depth",
        );
      },
    ),
    runs(60),
  );
});

Deno.test("decodeUtf8() on arbitrary bytes returns well-formed text of those bytes or InvalidBodyError", () => {
  /** Byte sequences that are not UTF-8: overlong, surrogates, past U+10FFFF, cut short, stray. */
  const invalid = fc.constantFrom(
    [0xc0, 0xaf],
    [0xe0, 0x80, 0xaf],
    [0xed, 0xa0, 0x80],
    [0xed, 0xbf, 0xbf],
    [0xf4, 0x90, 0x80, 0x80],
    [0xf8, 0x88, 0x80, 0x80, 0x80],
    [0xe6, 0x97],
    [0x80],
    [0xff],
    [0xfe],
  );
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.tuple(fc.string({ unit: "binary", maxLength: 40 }), invalid, fc.nat()).map(
      ([s, bad, at]) => {
        const ok = encoder.encode(s);
        const i = at % (ok.length + 1);
        return Uint8Array.from([...ok.subarray(0, i), ...bad, ...ok.subarray(i)]);
      },
    ),
    fc.string({ unit: "binary", maxLength: 60 }).map((s) => encoder.encode(s)),
  );
  fc.assert(
    fc.property(bytes, (b) => {
      let text: string;
      try {
        text = decodeUtf8(b);
      } catch (err) {
        assert.ok(err instanceof InvalidBodyError, String(err));
        assert.equal(err.message, "Body is not valid UTF-8");
        return;
      }
      assert.ok(text.isWellFormed());
      const bom = b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
      assert.deepEqual(encoder.encode(text), b.subarray(bom));
    }),
    runs(500),
  );
  // Whatever a client's string, its UTF-8 decodes back to it (lone surrogates cannot be encoded).
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 80 }), (s) => {
      fc.pre(!s.startsWith("\ufeff"));
      assert.equal(decodeUtf8(encoder.encode(s)), s);
    }),
    runs(300),
  );
});

Deno.test("isNdjson() on an arbitrary Content-Type answers a boolean or UnsupportedContentError", () => {
  const contentType = fc.oneof(
    fc.constant(null),
    fc.string({ unit: "binary", maxLength: 60 }),
    fc.tuple(
      fc.constantFrom("application/json", "APPLICATION/X-NDJSON", "text/plain", "", "a/b+json"),
      fc.string({ maxLength: 20 }),
    ).map(([m, rest]) => `${m};${rest}`),
  );
  fc.assert(
    fc.property(contentType, (ct) => {
      try {
        assert.equal(typeof isNdjson(ct), "boolean");
      } catch (err) {
        assert.ok(err instanceof UnsupportedContentError, String(err));
        assert.match(err.message, /^Cannot read a body of type ".*": send application\/json/s);
      }
    }),
    runs(300),
  );
});

async function gzip(bytes: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A request whose body arrives in the given chunks, as a client might stream it. */
function streamed(chunks: Uint8Array[], headers: Record<string, string>): Request {
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < chunks.length) c.enqueue(chunks[i++]!);
      else c.close();
    },
  });
  return new Request("http://gateway.test/events", { method: "POST", body, headers });
}

function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.slice(prev, c));
    prev = c;
  }
  return out;
}

Deno.test("readBody() on arbitrary bodies, encodings and chunkings returns at most maxBytes or a documented error", async () => {
  const content = fc.oneof(
    fc.uint8Array({ maxLength: 3000 }),
    // Compressible: long runs of one byte, so that small compressed bodies inflate past the limit.
    fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 20_000 })).map(
      ([b, n]) => new Uint8Array(n).fill(b),
    ),
  );
  const encoding = fc.oneof(
    fc.constantFrom("identity", "gzip", "x-gzip", " GZIP ", "gzip"),
    fc.constantFrom("br", "deflate", "gzip, gzip", "gzip;q=1", "*"),
    fc.string({ unit: fc.constantFrom(..."abgipz-, ;=x"), maxLength: 12 }),
  );
  const corruption = fc.oneof(
    fc.constant(undefined),
    fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ truncate: fc.nat() }),
  );
  await fc.assert(
    fc.asyncProperty(
      content,
      encoding,
      corruption,
      fc.integer({ min: 1, max: 8192 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      fc.boolean(),
      async (plain, enc, corrupt, maxBytes, cuts, sendLength) => {
        const e = enc.trim().toLowerCase();
        const gz = e === "gzip" || e === "x-gzip";
        let wire: Uint8Array = gz ? await gzip(plain) : plain;
        if (corrupt && "xor" in corrupt && wire.length > 0) {
          wire = wire.slice();
          wire[corrupt.at % wire.length]! ^= corrupt.xor;
        } else if (corrupt && "truncate" in corrupt) {
          wire = wire.subarray(0, corrupt.truncate % (wire.length + 1));
        }
        const headers: Record<string, string> = { "content-encoding": enc };
        if (sendLength) headers["content-length"] = String(wire.length);
        let out: Uint8Array;
        try {
          out = await readBody(streamed(split(wire, cuts), headers), maxBytes);
        } catch (err) {
          if (err instanceof UnsupportedContentError) {
            assert.ok(!gz && e !== "identity", `${enc} refused`);
            return;
          }
          if (err instanceof LimitExceededError) {
            assert.equal(err.limit, "body_bytes");
            assert.ok(
              wire.length > maxBytes || (gz && plain.length > maxBytes) || (gz && corrupt),
              `limit hit for ${wire.length} wire / ${plain.length} plain bytes ≤ ${maxBytes}`,
            );
            return;
          }
          assert.ok(err instanceof InvalidBodyError, `readBody threw ${err}`);
          assert.ok(gz, "only a gzip body can be unreadable");
          assert.match(err.message, /^Cannot read the request body: /);
          return;
        }
        assert.ok(out.length <= maxBytes, `${out.length} bytes > ${maxBytes}`);
        assert.ok(wire.length <= maxBytes);
        if (!corrupt) assert.deepEqual(out, plain);
      },
    ),
    runs(300),
  );
});
