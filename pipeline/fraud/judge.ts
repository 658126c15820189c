/**
 * The LLM judge as the alert pipeline sees it: one method that never rejects. The Ollama-backed
 * implementation is `llm/llm_judge.ts`; tests pass a fixed one.
 *
 * @module
 */
import type { WindowEvent } from "./detector.ts";

/** What the judge returns (see `llm/llm_judge.ts`). */
export type JudgeOutcome =
  | {
    status: "ok";
    verdict: { fraud_score: number; verdict: string; rationale: string };
    model: string;
    latencyMs: number;
  }
  | { status: "unavailable"; reason: string };

/** The LLM judge as the pipeline uses it; `judge` never rejects. */
export interface Judge {
  judge(
    req: {
      userId: string;
      ruleScore: number;
      rules: { name: string; severity: string; reason: string }[];
      events: WindowEvent[];
    },
    key?: string,
  ): Promise<JudgeOutcome>;
}
