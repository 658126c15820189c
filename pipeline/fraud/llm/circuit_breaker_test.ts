// Tests of the LLM judge's circuit breaker on an injected clock.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { CircuitBreaker } from "./circuit_breaker.ts";

Deno.test("CircuitBreaker opens at the threshold, lets one trial through after resetMs", () => {
  let now = 0;
  const breaker = new CircuitBreaker({ threshold: 2, resetMs: 1000, now: () => now });
  assert.deepEqual(breaker.admit(), { trial: false });
  breaker.recordFailure(false);
  assert.equal(breaker.state, "closed");
  breaker.recordFailure(false);
  assert.equal(breaker.state, "open");
  assert.deepEqual(breaker.admit(), { reason: "circuit open until 1970-01-01T00:00:01.000Z" });
  now = 1000;
  assert.deepEqual(breaker.admit(), { trial: true });
  assert.equal(breaker.state, "half-open");
  assert.deepEqual(breaker.admit(), { reason: "circuit half-open: trial call in flight" });
  breaker.recordSuccess();
  assert.equal(breaker.state, "closed");
  assert.deepEqual(breaker.admit(), { trial: false });
});

Deno.test("CircuitBreaker: a failed trial opens it again; an abandoned one frees the trial", () => {
  let now = 0;
  const breaker = new CircuitBreaker({ threshold: 1, resetMs: 500, now: () => now });
  breaker.recordFailure(false);
  now = 500;
  assert.deepEqual(breaker.admit(), { trial: true });
  breaker.recordFailure(true);
  assert.equal(breaker.state, "open");
  now = 1000;
  assert.deepEqual(breaker.admit(), { trial: true });
  breaker.abandonTrial();
  assert.deepEqual(breaker.admit(), { trial: true }, "the next call may try");
});
