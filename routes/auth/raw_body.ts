/**
 * {@link readRawBody}: a request body's bytes as sent, bounded, for checking a signature over them
 * before the route decompresses and parses them. No `hono` here.
 *
 * @module
 */
import { LimitExceededError } from "../../shared/errors.ts";

/**
 * The body's bytes as sent (no decompression), refusing a declared or actual size over `maxBytes`
 * before holding more than that (plus one chunk).
 */
export async function readRawBody(
  req: Request,
  maxBytes: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = () =>
    new LimitExceededError("body_bytes", `Request body is larger than ${maxBytes} bytes`);
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) throw tooLarge();
  if (req.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  // A request stream's chunks are plain ArrayBuffer views (never shared memory).
  if (chunks.length === 1) return chunks[0] as Uint8Array<ArrayBuffer>;
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
