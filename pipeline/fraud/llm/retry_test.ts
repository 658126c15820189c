// Tests of retry with backoff.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { type Failure, retry, sleep } from "./retry.ts";

const signal = new AbortController().signal;

Deno.test("retry() retries retryable failures up to `retries` extra attempts", async () => {
  let calls = 0;
  const failing = () => {
    calls++;
    return Promise.resolve<{ value: number } | Failure>({ reason: "HTTP 500", retryable: true });
  };
  const out = await retry(failing, { retries: 2, backoffMs: 1, signal });
  assert.deepEqual(out, {
    ok: false,
    failure: { reason: "HTTP 500", retryable: true },
    attempts: 3,
  });
  assert.equal(calls, 3);
});

Deno.test("retry() stops at a success or a failure that is not retryable", async () => {
  const answers: ({ value: number } | Failure)[] = [
    { reason: "timeout", retryable: true },
    { value: 7 },
  ];
  const ok = await retry(() => Promise.resolve(answers.shift()!), {
    retries: 5,
    backoffMs: 1,
    signal,
  });
  assert.deepEqual(ok, { ok: true, value: { value: 7 }, attempts: 2 });
  const fatal = await retry(
    () => Promise.resolve<{ value: number } | Failure>({ reason: "404", retryable: false }),
    { retries: 5, backoffMs: 1, signal },
  );
  assert.deepEqual(fatal, { ok: false, failure: { reason: "404", retryable: false }, attempts: 1 });
});

Deno.test("retry() and sleep() end at once when the signal aborts", async () => {
  const abort = new AbortController();
  const started = performance.now();
  const out = retry(() => {
    setTimeout(() => abort.abort(), 10);
    return Promise.resolve<{ value: number } | Failure>({ reason: "x", retryable: true });
  }, { retries: 1, backoffMs: 5_000, signal: abort.signal });
  assert.deepEqual(await out, { ok: false, aborted: true });
  assert.ok(performance.now() - started < 1_000);
  assert.equal(await sleep(10, abort.signal), false);
});
