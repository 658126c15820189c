/**
 * The model's answer: the verdict's zod schema, the JSON schema sent to Ollama as `format`, and
 * the validation of a reply. Nothing the model says reaches an alert before it passed here.
 *
 * @module
 */
import { z } from "zod";
import { cleanText, clip, MAX_REASON_CHARS } from "./text.ts";

/** The model's verdict, validated and cleaned. */
export interface Verdict {
  /** Probability of fraud, 0..1. */
  fraud_score: number;
  verdict: "fraud" | "suspicious" | "legitimate";
  /** At most 500 characters, trimmed, without control characters. */
  rationale: string;
}

/** Longest rationale kept, in characters. */
export const MAX_RATIONALE_CHARS = 500;

const MAX_REPLY_CHARS = 16_384;

const VerdictSchema = z.object({
  fraud_score: z.number().min(0).max(1).describe(
    "Probability that the activity is fraud: 0 = certainly legitimate, 1 = certainly fraud.",
  ),
  verdict: z.enum(["fraud", "suspicious", "legitimate"]),
  rationale: z.string().describe(
    `Short explanation citing the rules and events, at most ${MAX_RATIONALE_CHARS} characters.`,
  ),
});

/** The JSON schema sent as `format`, derived from the zod Verdict schema (z.toJSONSchema). */
export const VERDICT_JSON_SCHEMA: Record<string, unknown> = z.toJSONSchema(VerdictSchema);

/** A reply's verdict, or why it is not one. */
export type Parsed = { ok: true; verdict: Verdict } | { ok: false; reason: string };

function issuesSummary(error: z.ZodError): string {
  return clip(
    error.issues.slice(0, 3).map((issue) => {
      const path = issue.path.map(String).join(".");
      return path === "" ? issue.message : `${path}: ${issue.message}`;
    }).join("; "),
    MAX_REASON_CHARS,
  );
}

/** Parses and validates `message.content` of a chat reply. */
export function parseVerdict(content: unknown): Parsed {
  if (typeof content !== "string") return { ok: false, reason: "invalid reply: no content" };
  if (content.length > MAX_REPLY_CHARS) {
    return { ok: false, reason: `invalid reply: content longer than ${MAX_REPLY_CHARS} chars` };
  }
  // Builds that ignore `format` sometimes wrap the object in a markdown fence.
  const text = content.trim().replace(/^```(?:json)?\s*([\s\S]*?)\s*```$/i, "$1");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: `invalid reply: not JSON: ${JSON.stringify(clip(text, 60))}` };
  }
  const result = VerdictSchema.safeParse(json);
  if (!result.success) {
    return { ok: false, reason: `invalid reply: ${issuesSummary(result.error)}` };
  }
  const { fraud_score, verdict, rationale } = result.data;
  return {
    ok: true,
    verdict: { fraud_score, verdict, rationale: cleanText(rationale, MAX_RATIONALE_CHARS) },
  };
}
