/**
 * The order of `ObjectStore.list()` (see store.ts): ascending UTF-8 bytes, as S3 lists keys.
 * JavaScript's `<` compares UTF-16 code units, which differs above U+FFFF (an emoji sorts
 * before U+FFFD there, after it in UTF-8).
 *
 * @module
 */

/** Negative, zero or positive as `a` sorts before, with or after `b` in UTF-8 byte order. */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++; // both hold the same surrogate pair: step over its second half
  }
  return a.length - b.length;
}
