// The combining rule of an alert's scores: property-based over the whole score range (fast-check,
// seeded; replay a failure with FUZZ_SEED=<seed>), plus table cases at the edges.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import fc from "fast-check";
import { SEVERITIES, type Severity } from "./alert.ts";
import {
  combineScores,
  type Decision,
  llmSeverity,
  type LlmSide,
  roundScore,
  type RuleSide,
} from "./alert_score.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20_261_120);
const RUNS: fc.Parameters<unknown> = { seed: SEED, numRuns: 2_000 };
const VERDICTS = ["fraud", "suspicious", "legitimate"] as const;
const DECISIONS: readonly Decision[] = ["allow", "review", "block"];

const rank = (s: Severity) => SEVERITIES.indexOf(s);
const isRounded = (x: number) => roundScore(x) === x;

/** Scores over the whole range, with the edges and the thresholds drawn often. */
const score = fc.oneof(
  fc.double({ min: 0, max: 1, noNaN: true }),
  fc.constantFrom(0, 0.0005, 0.2, 0.4, 0.4995, 0.5, 0.7, 0.75, 0.8995, 0.9, 0.9995, 1),
  fc.integer({ min: 0, max: 1000 }).map((n) => n / 1000),
);
/** Anything a broken or hostile model could still get past validation with, and worse. */
const anyScore = fc.oneof(score, fc.double(), fc.constantFrom(NaN, Infinity, -Infinity, -0));
const ruleSide: fc.Arbitrary<RuleSide> = fc.record({
  score,
  severity: fc.constantFrom(...SEVERITIES),
  decision: fc.constantFrom(...DECISIONS),
});
const llmSide: fc.Arbitrary<LlmSide> = fc.record({
  score: anyScore,
  verdict: fc.oneof(fc.constantFrom(...VERDICTS), fc.string()),
});

Deno.test("combineScores() never publishes a score or severity below the rules'", () => {
  fc.assert(
    fc.property(ruleSide, fc.option(llmSide, { nil: undefined }), (rules, llm) => {
      const c = combineScores(rules, llm);
      assert.equal(c.rule_score, roundScore(rules.score));
      assert.ok(c.fraud_score >= c.rule_score);
      assert.ok(c.fraud_score >= 0 && c.fraud_score <= 1);
      assert.ok(isRounded(c.fraud_score), `${c.fraud_score} is rounded to 3 places`);
      assert.ok(rank(c.severity) >= rank(rules.severity));
    }),
    RUNS,
  );
});

Deno.test("combineScores() is max(rule_score, llm_score), both rounded to 3 places", () => {
  fc.assert(
    fc.property(ruleSide, llmSide, (rules, llm) => {
      const c = combineScores(rules, llm);
      if (!Number.isFinite(llm.score)) {
        assert.equal(c.llm_score, null);
        assert.equal(c.fraud_score, c.rule_score);
        return;
      }
      assert.equal(c.llm_score, roundScore(llm.score));
      assert.equal(c.fraud_score, Math.max(c.rule_score, c.llm_score!));
      // The LLM raises the score whenever it scores higher: it is not only a floor, it adds.
      if (c.llm_score! > c.rule_score) assert.equal(c.fraud_score, c.llm_score);
    }),
    RUNS,
  );
});

Deno.test("combineScores() without an LLM answer is the rules' decision, unchanged", () => {
  fc.assert(
    fc.property(ruleSide, (rules) => {
      assert.deepEqual(combineScores(rules, undefined), {
        rule_score: roundScore(rules.score),
        llm_score: null,
        fraud_score: roundScore(rules.score),
        severity: rules.severity,
        llm_disagrees: false,
      });
    }),
    RUNS,
  );
});

Deno.test("combineScores() severity: only a fraud verdict raises it, by its score", () => {
  fc.assert(
    fc.property(ruleSide, llmSide, (rules, llm) => {
      const c = combineScores(rules, llm);
      if (llm.verdict !== "fraud") assert.equal(c.severity, rules.severity);
      const asked = llmSeverity(llm);
      const want = asked && rank(asked) > rank(rules.severity) ? asked : rules.severity;
      assert.equal(c.severity, want);
    }),
    RUNS,
  );
});

Deno.test("combineScores() flags a disagreement exactly by the documented rule", () => {
  fc.assert(
    fc.property(ruleSide, llmSide, (rules, llm) => {
      const c = combineScores(rules, llm);
      const gap = c.llm_score === null
        ? 0
        : Math.round(c.rule_score * 1000) - Math.round(c.llm_score * 1000);
      const want = c.llm_score !== null && rules.decision !== "allow" &&
        (llm.verdict === "legitimate" || gap >= 500);
      assert.equal(c.llm_disagrees, want);
    }),
    RUNS,
  );
});

Deno.test("combineScores() against an obeying model: the rules' score and severity, flagged", () => {
  const flaggedRules = ruleSide.filter((r) => r.decision !== "allow");
  fc.assert(
    fc.property(flaggedRules, (rules) => {
      const c = combineScores(rules, { score: 0, verdict: "legitimate" });
      assert.equal(c.fraud_score, roundScore(rules.score));
      assert.equal(c.llm_score, 0);
      assert.equal(c.severity, rules.severity);
      assert.equal(c.llm_disagrees, true);
    }),
    RUNS,
  );
});

Deno.test("combineScores() table cases at the edges", async (t) => {
  const rules = (score: number, severity: Severity, decision: Decision = "review"): RuleSide => ({
    score,
    severity,
    decision,
  });
  const cases: [
    string,
    RuleSide,
    LlmSide | undefined,
    Partial<ReturnType<typeof combineScores>>,
  ][] = [
    [
      "the injected answer: critical rules, LLM 0 legitimate",
      rules(0.9, "critical", "block"),
      { score: 0, verdict: "legitimate" },
      { fraud_score: 0.9, llm_score: 0, severity: "critical", llm_disagrees: true },
    ],
    [
      "LLM higher than the rules: its score",
      rules(0.75, "medium"),
      { score: 0.95, verdict: "fraud" },
      { fraud_score: 0.95, severity: "critical", llm_disagrees: false },
    ],
    [
      "gap of exactly 0.5 where 0.7 - 0.2 < 0.5 in floating point",
      rules(0.7, "high"),
      { score: 0.2, verdict: "suspicious" },
      { fraud_score: 0.7, llm_disagrees: true },
    ],
    [
      "gap just under 0.5",
      rules(0.9, "critical"),
      { score: 0.401, verdict: "suspicious" },
      { fraud_score: 0.9, llm_disagrees: false },
    ],
    [
      "legitimate with a high score still disagrees",
      rules(0.75, "medium"),
      { score: 0.8, verdict: "legitimate" },
      { fraud_score: 0.8, severity: "medium", llm_disagrees: true },
    ],
    [
      "rules say allow: nothing to disagree with",
      rules(0.5, "medium", "allow"),
      { score: 0, verdict: "legitimate" },
      { fraud_score: 0.5, llm_disagrees: false },
    ],
    [
      "fraud 0.8 raises medium rules to high",
      rules(0.75, "medium"),
      { score: 0.8, verdict: "fraud" },
      { fraud_score: 0.8, severity: "high" },
    ],
    [
      "suspicious never raises the severity",
      rules(0.75, "medium"),
      { score: 1, verdict: "suspicious" },
      { fraud_score: 1, severity: "medium" },
    ],
    [
      "0.8995 rounds half up to 0.9: critical",
      rules(0.75, "medium"),
      { score: 0.8995, verdict: "fraud" },
      { llm_score: 0.9, fraud_score: 0.9, severity: "critical" },
    ],
    [
      "0.8994 rounds to 0.899: high",
      rules(0.75, "medium"),
      { score: 0.8994, verdict: "fraud" },
      { llm_score: 0.899, severity: "high" },
    ],
    [
      "fraud 0.1 asks for no severity",
      rules(0.75, "medium"),
      { score: 0.1, verdict: "fraud" },
      { severity: "medium", llm_disagrees: true },
    ],
    [
      "scores out of range are clamped",
      rules(0.7, "high"),
      { score: 1.7, verdict: "fraud" },
      { llm_score: 1, fraud_score: 1, severity: "critical" },
    ],
    [
      "a negative LLM score is 0",
      rules(0.7, "high"),
      { score: -3, verdict: "legitimate" },
      { llm_score: 0, fraud_score: 0.7, llm_disagrees: true },
    ],
    [
      "a NaN LLM score is no LLM score",
      rules(0.9, "critical"),
      { score: NaN, verdict: "legitimate" },
      { llm_score: null, fraud_score: 0.9, llm_disagrees: false },
    ],
    [
      "a NaN rule score fails closed",
      rules(NaN, "critical"),
      { score: 0, verdict: "legitimate" },
      { rule_score: 1, fraud_score: 1, llm_disagrees: true },
    ],
    [
      "no LLM: the rule score",
      rules(0.9, "critical", "block"),
      undefined,
      { rule_score: 0.9, llm_score: null, fraud_score: 0.9, llm_disagrees: false },
    ],
  ];
  for (const [name, r, llm, want] of cases) {
    await t.step(name, () => {
      const c = combineScores(r, llm);
      for (const [key, value] of Object.entries(want)) {
        assert.equal(c[key as keyof typeof c], value, `${key} of ${JSON.stringify(c)}`);
      }
    });
  }
});
