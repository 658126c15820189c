import assert from "node:assert/strict";
import { healthRoutes, type ReadinessCheck, sharedProbe } from "./health.ts";

type Answer = Awaited<ReturnType<ReadinessCheck["probe"]>>;

/** A probe that counts its runs and answers when `settle` is called. */
function manualProbe() {
  let runs = 0;
  const pending: ((a: Answer) => void)[] = [];
  return {
    get runs() {
      return runs;
    },
    probe: () => {
      runs++;
      return new Promise<Answer>((resolve) => pending.push(resolve));
    },
    settle: (a: Answer) => pending.splice(0).forEach((r) => r(a)),
  };
}

Deno.test("sharedProbe() runs a probe once for concurrent callers and reuses it for reuseMs", async () => {
  let clock = 0;
  const p = manualProbe();
  const shared = sharedProbe(p.probe, 1000, () => clock);

  const a = shared(), b = shared();
  assert.equal(p.runs, 1, "two callers while it runs share one run");
  clock = 5_000; // a probe that takes long is not run again meanwhile: the run is shared
  assert.equal(shared(), a);
  p.settle({ state: "ok", detail: "first" });
  assert.deepEqual(await a, { state: "ok", detail: "first" });
  assert.equal(await b, await a);

  clock = 5_900; // 900 ms after the answer arrived: reused
  assert.deepEqual(await shared(), { state: "ok", detail: "first" });
  assert.equal(p.runs, 1);

  clock = 6_000; // reuseMs after the answer: probed again, and the new answer is given
  const c = shared();
  assert.equal(p.runs, 2);
  p.settle({ state: "down", detail: "second" });
  assert.deepEqual(await c, { state: "down", detail: "second" });
});

Deno.test("sharedProbe() turns a throwing probe into down with its message, and retries later", async () => {
  let clock = 0;
  let fail = true;
  const shared = sharedProbe(
    () => fail ? Promise.reject(new Error("disk gone")) : Promise.resolve({ state: "ok" as const }),
    1000,
    () => clock,
  );
  assert.deepEqual(await shared(), { state: "down", detail: "disk gone" });
  fail = false;
  assert.deepEqual(await shared(), { state: "down", detail: "disk gone" }, "reused within 1 s");
  clock = 1000;
  assert.deepEqual(await shared(), { state: "ok" });
});

Deno.test("GET /ready polled in a loop probes each dependency at most once per probeReuseMs", async () => {
  let diskRuns = 0;
  const app = healthRoutes({
    checks: [{
      name: "lake disk",
      critical: true,
      probe: () => {
        diskRuns++;
        return Promise.resolve({ state: "ok" });
      },
    }],
    probeReuseMs: 60_000,
  });
  const answers = await Promise.all(
    Array.from({ length: 200 }, async () => (await app.request("/ready")).status),
  );
  assert.deepEqual(new Set(answers), new Set([200]));
  assert.equal(diskRuns, 1, "200 requests, one disk probe");
});

Deno.test("sharedProbe() answers down when a probe hangs past its timeout", async () => {
  const shared = sharedProbe(() => new Promise(() => {}), 1000, () => 0, 20);
  assert.deepEqual(await shared(), { state: "down", detail: "no answer in 20 ms" });
});
