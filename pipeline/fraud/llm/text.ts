/**
 * Text helpers of the LLM judge: cutting strings to a budget and cleaning what the model (or an
 * error) says before anyone logs or stores it.
 *
 * @module
 */

/** Longest failure reason kept, in characters. */
export const MAX_REASON_CHARS = 200;

/** `text` cut to at most `max` characters, an ellipsis marking the cut. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g;

/** One line of plain text: control and bidi characters become spaces, at most `max` code points. */
export function cleanText(text: string, max: number): string {
  const chars = Array.from(text.replace(CONTROL_CHARS, " ").replace(/\s+/g, " ").trim());
  return chars.length <= max ? chars.join("") : chars.slice(0, max).join("").trimEnd();
}

/** The cleaned message of anything thrown. */
export function messageOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return cleanText(text, MAX_REASON_CHARS) || "unknown error";
}
