/**
 * Small HTTP pieces of {@link ../storage/s3.ts}: its error types, a semaphore, an abortable
 * sleep, a capped body read, and S3's encoding of keys in URLs.
 *
 * @module
 */

/**
 * Answer codes that say "try again" whatever their status: S3 may even answer a
 * CompleteMultipartUpload 200 with an InternalError in the body.
 */
const RETRY_CODES = new Set([
  "SlowDown",
  "RequestTimeout",
  "ConditionalRequestConflict",
  "InternalError",
  "ServiceUnavailable",
]);
/** Error answers are read up to this size (their `<Code>` is what matters). */
const MAX_ERROR_BODY = 64 * 1024;

/** A request the bucket refused or failed: the HTTP status and S3's error code, if any. */
export class S3Error extends Error {
  override name = "S3Error";
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** An answer S3 refused or failed, as "HTTP 503 SlowDown: Please reduce… (request id …)". */
export class HttpFailure extends Error {
  readonly retryable: boolean;
  constructor(
    readonly status: number,
    readonly code: string,
    text: string,
    requestId: string | null,
  ) {
    super(
      `HTTP ${status}${code ? ` ${code}` : ""}${text ? `: ${text}` : ""}` +
        (requestId ? ` (request id ${requestId})` : ""),
    );
    // 5xx, 429 and S3's own "try again" codes; never another 4xx (403, 404, 412…).
    this.retryable = status >= 500 || status === 429 || RETRY_CODES.has(code);
  }
}

/** A failure another attempt may not have: no answer, a retryable {@link HttpFailure}… */
export class Transient extends Error {}

/** A counting semaphore: at most `n` holders at once. */
export class Semaphore {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

/** Waits `ms`, or until `signal` aborts (then rejects); leaves no listener behind. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const stop = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", stop);
      resolve();
    }, ms);
    signal.addEventListener("abort", stop, { once: true });
  });
}

/** Reads at most 64 KiB of an answer as text and drops the rest. */
export async function readCapped(res: Response): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < MAX_ERROR_BODY) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return new TextDecoder().decode(all);
}

/** Percent-encodes a path segment or query part as SigV4 does (RFC 3986: also `!'()*`). */
export function encodeSegment(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** Hex SHA-256 of `data`, as `x-amz-content-sha256` wants it. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** S3's id of the request, for support cases. */
export function requestId(res: Response): string | null {
  return res.headers.get("x-amz-request-id");
}

/** Throws `message`: for `??` in an expression. */
export function fail(message: string): never {
  throw new Error(message);
}
