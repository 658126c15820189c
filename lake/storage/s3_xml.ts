/**
 * The few S3 XML documents {@link ../storage/s3.ts} reads and writes, parsed by hand: S3's answers
 * are flat, machine-written documents (no CDATA, no comments inside the elements read here), so a
 * full XML parser would be a dependency for nothing. Text is entity-decoded exactly once.
 *
 * @module
 */

/** One object of a ListObjectsV2 page, its key as stored in the bucket (with any store prefix). */
export interface ListedObject {
  key: string;
  size: number;
  mtimeMs: number;
}

/** One page of a ListObjectsV2 answer. */
export interface ListPage {
  objects: ListedObject[];
  /** The token of the next page; `undefined` on the last page. */
  nextToken: string | undefined;
}

/** The `<Code>` and `<Message>` of an S3 `<Error>` document. */
export interface S3ErrorBody {
  code: string;
  message: string;
}

const ENTITY = /&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|amp|lt|gt|quot|apos);/g;
const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** Decodes XML character and entity references in one pass (`&amp;lt;` stays `&lt;`). */
export function xmlUnescape(text: string): string {
  return text.replace(ENTITY, (ref: string, name: string) => {
    if (!name.startsWith("#")) return NAMED[name] ?? ref;
    const code = name[1] === "x" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : ref;
  });
}

/** Escapes text for an XML element's content. */
export function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${ENTITY_NAME[c]};`);
}
const ENTITY_NAME: Record<string, string> = {
  "&": "amp",
  "<": "lt",
  ">": "gt",
  '"': "quot",
  "'": "apos",
};

/** The decoded text of the first `<name>` element in `xml`, or `undefined`. */
function element(xml: string, name: string): string | undefined {
  const match = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  return match ? xmlUnescape(match[1] ?? "") : undefined;
}

/**
 * Parses a ListObjectsV2 answer. With `<EncodingType>url</EncodingType>` keys are URL-encoded
 * (space as `+`, as S3 does), which keeps any key representable in XML 1.0; they are decoded here.
 */
export function parseListPage(xml: string): ListPage {
  if (!xml.includes("<ListBucketResult")) {
    throw new Error(
      `Cannot parse ListObjectsV2 answer: no <ListBucketResult> in "${xml.slice(0, 80)}"`,
    );
  }
  const urlEncoded = element(xml, "EncodingType") === "url";
  const objects: ListedObject[] = [];
  for (const match of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
    const body = match[1] ?? "";
    const raw = element(body, "Key");
    const size = Number(element(body, "Size"));
    const mtimeMs = Date.parse(element(body, "LastModified") ?? "");
    if (raw === undefined || !Number.isSafeInteger(size) || size < 0) {
      throw new Error(`Cannot parse ListObjectsV2 answer: bad <Contents> "${body.slice(0, 200)}"`);
    }
    const key = urlEncoded ? decodeURIComponent(raw.replace(/\+/g, "%20")) : raw;
    objects.push({ key, size, mtimeMs: Number.isFinite(mtimeMs) ? mtimeMs : 0 });
  }
  const truncated = element(xml, "IsTruncated")?.trim() === "true";
  const nextToken = truncated ? element(xml, "NextContinuationToken") : undefined;
  if (truncated && !nextToken) {
    throw new Error("Cannot parse ListObjectsV2 answer: truncated without <NextContinuationToken>");
  }
  return { objects, nextToken };
}

/** The code and message of an S3 `<Error>` document, or `undefined` when `xml` is not one. */
export function parseErrorBody(xml: string): S3ErrorBody | undefined {
  const at = xml.indexOf("<Error>");
  if (at < 0) return undefined;
  const body = xml.slice(at);
  return { code: element(body, "Code") ?? "", message: element(body, "Message") ?? "" };
}

/** The `<UploadId>` of a CreateMultipartUpload answer. */
export function parseUploadId(xml: string): string {
  const id = element(xml, "UploadId");
  if (!id) throw new Error(`Cannot parse CreateMultipartUpload answer: no <UploadId>`);
  return id;
}

/** The body of a CompleteMultipartUpload request; `etags[i]` is part `i + 1`'s ETag. */
export function completeMultipartXml(etags: readonly string[]): string {
  const parts = etags.map((etag, i) =>
    `<Part><PartNumber>${i + 1}</PartNumber><ETag>${xmlEscape(etag)}</ETag></Part>`
  );
  return `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
    `${parts.join("")}</CompleteMultipartUpload>`;
}
