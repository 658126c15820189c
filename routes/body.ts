/**
 * Reading a request body into raw events: one JSON event, a JSON array, or NDJSON, optionally gzip.
 * Every limit is enforced while reading, before anything large is held in memory.
 *
 * @module
 */
import type { BodyItem } from "../pipeline/ingest.ts";
import { InvalidBodyError, LimitExceededError, UnsupportedContentError } from "../shared/errors.ts";

/** Limits on one body. */
export interface BodyLimits {
  /** Largest body in bytes, compressed and decompressed alike. */
  maxBytes: number;
  /** Most events in one body. */
  maxEvents: number;
  /** Deepest nesting of arrays and objects, counting the top-level array of a batch. */
  maxDepth: number;
}

const NDJSON_TYPES = [
  "application/x-ndjson",
  "application/ndjson",
  "application/jsonl",
  "application/x-jsonlines",
];
const JSON_TYPES = ["application/json", "text/json"];

/** Whether a Content-Type header names NDJSON (else the body is read as JSON). */
export function isNdjson(contentType: string | null): boolean {
  const mime = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (NDJSON_TYPES.includes(mime)) return true;
  if (mime === "" || JSON_TYPES.includes(mime) || mime.endsWith("+json")) return false;
  throw new UnsupportedContentError(
    `Cannot read a body of type "${mime}": send application/json or application/x-ndjson`,
  );
}

/**
 * Reads a request body as bytes, decompressing gzip, and stops as soon as a limit is crossed so a
 * compression bomb or an endless stream costs at most `maxBytes` of memory.
 */
export async function readBody(req: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) throw tooLarge(maxBytes, "");
  const encoding = (req.headers.get("content-encoding") ?? "identity").trim().toLowerCase();
  const gzip = encoding === "gzip" || encoding === "x-gzip";
  if (!gzip && encoding !== "identity") {
    throw new UnsupportedContentError(
      `Cannot read Content-Encoding "${encoding}": send gzip or identity`,
    );
  }
  if (!req.body) return new Uint8Array(0);
  if (!gzip && Number.isSafeInteger(declared)) {
    // The common case: a plain body of a declared, allowed length. The server hands over exactly
    // that many bytes, so one read is safe and skips the stream pipeline (~40 % of a small
    // request's cost). The size is checked again for a Request built in-process.
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await req.arrayBuffer());
    } catch (err) {
      throw new InvalidBodyError(
        `Cannot read the request body: ${(err as Error).message}`,
        undefined,
        {
          cause: err,
        },
      );
    }
    if (bytes.byteLength > maxBytes) throw tooLarge(maxBytes, "");
    return bytes;
  }
  let stream: ReadableStream<Uint8Array> = req.body.pipeThrough(limitStream(maxBytes, ""));
  if (gzip) {
    stream = stream.pipeThrough(pieces(INFLATE_PIECE_BYTES)).pipeThrough(
      new DecompressionStream("gzip") as TransformStream<Uint8Array, Uint8Array>,
    ).pipeThrough(limitStream(maxBytes, " after decompression"));
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of stream) {
      chunks.push(chunk);
      total += chunk.byteLength;
    }
  } catch (err) {
    if (err instanceof LimitExceededError) throw err;
    throw new InvalidBodyError(
      `Cannot read the request body: ${(err as Error).message}`,
      undefined,
      {
        cause: err,
      },
    );
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/**
 * Largest piece of compressed input handed to the decompressor at once. Deno's DecompressionStream
 * inflates each chunk it is given in one step, and deflate expands up to ~1032 times: a body that
 * arrives as one 1 MB chunk of a gzip bomb became 1 GB in memory before the limit below saw any of
 * it. In 8 KiB pieces, one step yields at most ~8.3 MB.
 */
const INFLATE_PIECE_BYTES = 8 * 1024;

/** Splits chunks into views of at most `size` bytes (no copy). */
function pieces(size: number): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      if (chunk.byteLength <= size) return controller.enqueue(chunk);
      for (let at = 0; at < chunk.byteLength; at += size) {
        controller.enqueue(chunk.subarray(at, at + size));
      }
    },
  });
}

function tooLarge(maxBytes: number, when: string): LimitExceededError {
  return new LimitExceededError(
    "body_bytes",
    `Request body is larger than ${maxBytes} bytes${when}`,
  );
}

function limitStream(maxBytes: number, when: string): TransformStream<Uint8Array, Uint8Array> {
  let seen = 0;
  return new TransformStream({
    transform(chunk, controller) {
      seen += chunk.byteLength;
      if (seen > maxBytes) controller.error(tooLarge(maxBytes, when));
      else controller.enqueue(chunk);
    },
  });
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Decodes UTF-8 strictly: invalid bytes are an error, never replacement characters in the lake. */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch (err) {
    throw new InvalidBodyError("Body is not valid UTF-8", undefined, { cause: err });
  }
}

/**
 * Splits a body into raw events.
 *
 * A JSON body that does not parse is an error for the whole request (400, with the line and column).
 * An NDJSON line that does not parse is reported as that one event's error; the other lines go on.
 */
export function parseBody(text: string, ndjson: boolean, limits: BodyLimits): BodyItem[] {
  if (ndjson) return parseNdjson(text, limits);
  if (text.trim() === "") {
    throw new InvalidBodyError("Body is empty: send one event or an array of events");
  }
  const longestElement = checkDepth(text, limits.maxDepth, 0);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const at = locateJsonError(text);
    throw new InvalidBodyError(
      `Cannot parse JSON body at line ${at.line}, column ${at.column}: ${at.message}`,
      { line: at.line, column: at.column },
      { cause: err },
    );
  }
  if (Array.isArray(value)) {
    if (value.length === 0) {
      // Like an empty body or NDJSON without a line: a 202 would claim an event was accepted.
      throw new InvalidBodyError("Body is an empty array: send at least one event");
    }
    if (value.length > limits.maxEvents) throw tooMany(value.length, limits.maxEvents);
    // Re-serialising keeps the dead-letter copy faithful without slicing the text by hand; it is
    // done only for an element that needs it (a rejected one, or one that may be too large).
    const atMost = longestElement * MAX_REWRITE_GROWTH * 3;
    return value.map((v) => new ArrayElement(v, atMost));
  }
  return [{ ok: true, value, raw: text }];
}

/**
 * How many times longer `JSON.stringify(JSON.parse(x))` can be than `x`: a number in exponent form
 * is written out in full (`1e20`, 4 characters, becomes 21); escapes and whitespace only shrink.
 */
const MAX_REWRITE_GROWTH = 6;

/** An element of a JSON array body, with its dead-letter text made on first use. */
class ArrayElement {
  readonly ok = true;
  readonly value: unknown;
  /** UTF-8 bytes of {@link raw}, at most (3 per UTF-16 unit). */
  readonly rawBytesAtMost: number;
  #raw: string | undefined;

  constructor(value: unknown, rawBytesAtMost: number) {
    this.value = value;
    this.rawBytesAtMost = rawBytesAtMost;
  }

  get raw(): string {
    return this.#raw ??= JSON.stringify(this.value);
  }
}

function parseNdjson(text: string, limits: BodyLimits): BodyItem[] {
  const items: BodyItem[] = [];
  let start = 0;
  let lineNo = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    lineNo++;
    const line = text.slice(start, end).replace(/\r$/, "");
    start = end + 1;
    if (line.trim() === "") continue;
    if (items.length >= limits.maxEvents) throw tooMany(items.length + 1, limits.maxEvents);
    try {
      checkDepth(line, limits.maxDepth - 1, lineNo);
      items.push({ ok: true, value: JSON.parse(line), raw: line });
    } catch (err) {
      if (err instanceof LimitExceededError) throw err;
      const at = locateJsonError(line);
      items.push({
        ok: false,
        raw: line,
        message: `Cannot parse NDJSON line ${lineNo}, column ${at.column}: ${at.message}`,
      });
    }
  }
  if (items.length === 0) {
    throw new InvalidBodyError("Body is empty: send at least one NDJSON line");
  }
  return items;
}

function tooMany(n: number, max: number): LimitExceededError {
  return new LimitExceededError("events", `Request holds more than ${max} events (at least ${n})`);
}

const OPEN_BRACE = 0x7b, OPEN_BRACKET = 0x5b, CLOSE_BRACE = 0x7d, CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c;

/**
 * Rejects nesting deeper than `maxDepth` before `JSON.parse` sees the text, so a hostile body
 * cannot make the parser or any later recursive walk run out of stack. Returns the length (UTF-16
 * units) of the longest element of a top-level array, or of the whole text when it is no array.
 */
export function checkDepth(text: string, maxDepth: number, lineNo: number): number {
  let depth = 0;
  let inString = false;
  let elementStart = -1, longest = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === COMMA && depth === 1) {
      longest = Math.max(longest, i - elementStart);
      elementStart = i;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (depth === 0 && c === OPEN_BRACKET) elementStart = i;
      if (++depth > maxDepth) {
        const where = lineNo > 0 ? `NDJSON line ${lineNo}` : "the body";
        throw new LimitExceededError(
          "json_depth",
          `JSON in ${where} is nested deeper than ${maxDepth} levels`,
        );
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (--depth === 0 && elementStart >= 0) longest = Math.max(longest, i - elementStart);
    }
  }
  // Not an array (or not valid JSON, which JSON.parse refuses next): the whole text bounds it.
  return elementStart < 0 ? text.length : longest;
}

/**
 * Finds where JSON text stops being valid. V8's `JSON.parse` no longer reports a position, and a
 * client fixing its request needs one. Only called once parsing has failed, so speed is secondary.
 */
export function locateJsonError(text: string): { line: number; column: number; message: string } {
  const scanner = new JsonScanner(text);
  try {
    scanner.scan();
    return { ...lineColumn(text, text.length), message: "invalid JSON" };
  } catch (e) {
    const { at, message } = e as ScanError;
    return { ...lineColumn(text, at), message };
  }
}

/** What {@link JsonScanner} throws at the first thing that is not JSON: where, and what. */
interface ScanError {
  at: number;
  message: string;
}

/**
 * Walks JSON text the way a parser would, throwing a {@link ScanError} where it stops being valid.
 * Iterative (open containers are a stack, not calls) so that the locator itself cannot overflow
 * the stack.
 */
class JsonScanner {
  #text: string;
  /** Where the scan is. */
  #i = 0;
  /** The closing bracket of each open container, innermost last. */
  #stack: string[] = [];

  constructor(text: string) {
    this.#text = text;
  }

  /** Scans one JSON value and the whitespace around it; throws where the text goes wrong. */
  scan(): void {
    const text = this.#text;
    if (this.#value() === "open") this.#containers();
    this.#ws();
    if (this.#i < text.length) {
      this.#fail(`unexpected ${describe(text[this.#i])} after the JSON value`);
    }
  }

  /** The rest of the open containers: their values, commas and closing brackets. */
  #containers(): void {
    const text = this.#text;
    const stack = this.#stack;
    for (;;) {
      if (stack.length === 0) break;
      if (this.#value() === "open") continue;
      // after a value inside a container
      for (;;) {
        this.#ws();
        const close = stack.at(-1)!;
        if (text[this.#i] === ",") {
          this.#i++;
          if (close === "}") this.#member();
          break;
        }
        if (text[this.#i] === close) {
          stack.pop();
          this.#i++;
          if (stack.length === 0) break;
          continue;
        }
        this.#fail(`expected "," or "${close}", found ${describe(text[this.#i])}`);
      }
    }
  }

  /** One value; "open" when it opened a non-empty container (whose contents come next). */
  #value(): "open" | undefined {
    const text = this.#text;
    this.#ws();
    const ch = text[this.#i];
    if (ch === "{" || ch === "[") {
      this.#stack.push(ch === "{" ? "}" : "]");
      this.#i++;
      this.#ws();
      if (text[this.#i] === this.#stack.at(-1)) {
        this.#stack.pop();
        this.#i++;
        return;
      }
      if (ch === "{") this.#member();
      return "open";
    }
    if (ch === '"') this.#string();
    else if (ch === "t") this.#literal("true");
    else if (ch === "f") this.#literal("false");
    else if (ch === "n") this.#literal("null");
    else if (ch === "-" || (ch !== undefined && ch >= "0" && ch <= "9")) this.#number();
    else this.#fail(`unexpected ${describe(ch)}`);
  }

  /** A property name and its colon. */
  #member(): void {
    const text = this.#text;
    this.#ws();
    if (text[this.#i] !== '"') {
      this.#fail(`expected a property name in double quotes, found ${describe(text[this.#i])}`);
    }
    this.#string();
    this.#ws();
    if (text[this.#i] !== ":") {
      this.#fail(`expected ":" after a property name, found ${describe(text[this.#i])}`);
    }
    this.#i++;
  }

  #string(): void {
    const text = this.#text;
    this.#i++;
    while (this.#i < text.length) {
      const ch = text[this.#i]!;
      if (ch === '"') {
        this.#i++;
        return;
      }
      if (ch === "\\") {
        const esc = text[this.#i + 1];
        if (esc === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(this.#i + 2, this.#i + 6))) {
            this.#fail("bad \\u escape in string");
          }
          this.#i += 6;
        } else if (esc !== undefined && '"\\/bfnrt'.includes(esc)) this.#i += 2;
        else this.#fail("bad escape in string");
      } else if (ch.charCodeAt(0) < 0x20) this.#fail("control character in string");
      else this.#i++;
    }
    this.#fail("unterminated string");
  }

  #number(): void {
    const text = this.#text;
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(this.#i, this.#i + 400));
    if (!m || m[0] === "" || m[0] === "-") this.#fail(`unexpected ${describe(text[this.#i])}`);
    this.#i += m![0].length;
  }

  #literal(word: string): void {
    if (this.#text.startsWith(word, this.#i)) this.#i += word.length;
    else this.#fail(`unexpected ${describe(this.#text[this.#i])}`);
  }

  #ws(): void {
    const text = this.#text;
    while (this.#i < text.length && " \t\n\r".includes(text[this.#i]!)) this.#i++;
  }

  #fail(message: string): never {
    throw { at: this.#i, message } satisfies ScanError;
  }
}

function describe(ch: string | undefined): string {
  return ch === undefined ? "end of input" : JSON.stringify(ch);
}

function lineColumn(text: string, at: number): { line: number; column: number } {
  let line = 1, lineStart = 0;
  for (let k = 0; k < at && k < text.length; k++) {
    if (text.charCodeAt(k) === 10) {
      line++;
      lineStart = k + 1;
    }
  }
  return { line, column: at - lineStart + 1 };
}
