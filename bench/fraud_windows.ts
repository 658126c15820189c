/**
 * Item 4, fraud window round trip per batch: `FraudDetector.score()` on realistic mixed traffic,
 * through the in-memory store and through @upstash/redis → the REST bridge (`deno task
 * redis:bridge`, its own process) → the real Redis, beside the floor measured in the same run:
 * Redis' own execution time of the batch's script (INFO commandstats), which no client can beat.
 *
 *   deno run -A bench/fraud_windows.ts     (alone; `deno task bench` runs it as item 4)
 *
 * Redis must be on 127.0.0.1:6379 (`deno task bench` starts it when it is not).
 *
 * @module
 */
import { FraudDetector } from "../pipeline/fraud/detector.ts";
import { DEFAULT_THRESHOLDS } from "../pipeline/fraud/rules.ts";
import { UpstashWindowStore } from "../pipeline/fraud/upstash.ts";
import { MemoryWindowStore, type WindowOp, type WindowStore } from "../pipeline/fraud/windows.ts";
import type { Envelope } from "../shared/schemas.ts";
import { connectResp } from "../tests/fixtures/upstash_bridge.ts";
import { type Bench, percentiles } from "./lib/context.ts";
import { runCleanups, startBridge } from "./lib/proc.ts";
import { fmtMs } from "./lib/report.ts";

const TYPES = ["page_view", "page_view", "login", "login", "purchase", "api_call", "click"];
let seq = 0;
function event(at: number): Envelope {
  const type = TYPES[seq % TYPES.length]!;
  const user = `bench-user-${seq % 1000}`;
  const payload: Record<string, unknown> = type === "purchase"
    ? { amount: 20 + (seq % 300), currency: "USD", card_fingerprint: `card-${seq % 700}` }
    : type === "login"
    ? { ip: `172.16.${seq % 50}.${seq % 200}`, country: seq % 97 === 0 ? "BR" : "DE" }
    : type === "api_call"
    ? { endpoint: "/v1/orders", status_code: seq % 20 === 0 ? 503 : 200 }
    : { page: "/home" };
  seq++;
  const iso = new Date(at).toISOString();
  return {
    event_id: crypto.randomUUID(),
    type: type as Envelope["type"],
    event_type: type,
    user_id: user,
    occurred_at: iso,
    received_at: iso,
    source: "bench",
    payload,
  };
}

/** Counts the window ops of each batch. */
function countOps(store: WindowStore) {
  let ops = 0;
  const counting: WindowStore = {
    kind: store.kind,
    run(batch: readonly WindowOp[]) {
      ops += batch.length;
      return store.run(batch);
    },
    ping: () => store.ping(),
    close: () => store.close(),
  };
  return { counting, get: () => ops };
}

async function measure(store: WindowStore, batch: number, rounds: number) {
  const { counting, get } = countOps(store);
  const detector = new FraudDetector(counting, { thresholds: DEFAULT_THRESHOLDS, cooldownMs: 1 });
  const times: number[] = [];
  let t = Date.now() - 3_600_000;
  for (let r = 0; r < rounds + 3; r++) {
    const events = Array.from({ length: batch }, () => event(t += 50));
    const t0 = performance.now();
    await detector.score(events);
    if (r >= 3) times.push(performance.now() - t0); // 3 warm-up rounds
  }
  return { ...percentiles(times), rounds, opsPerBatch: get() / (rounds + 3) };
}

/** Redis' own time in EVALSHA so far (µs) and calls, from INFO commandstats. */
async function evalshaStats(): Promise<{ usec: number; calls: number }> {
  const conn = await connectResp();
  try {
    const [reply] = await conn.send([["INFO", "commandstats"]]);
    const text = reply?.type === "bulk" && reply.value ? new TextDecoder().decode(reply.value) : "";
    const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(text);
    return m ? { calls: Number(m[1]), usec: Number(m[2]) } : { calls: 0, usec: 0 };
  } finally {
    conn.close();
  }
}

/** One batch size's round trips through both stores, and Redis' own time per batch. */
export interface WindowFigures {
  batch: number;
  memory: ReturnType<typeof percentiles> & { rounds: number; opsPerBatch: number };
  upstash: ReturnType<typeof percentiles> & { rounds: number; opsPerBatch: number };
  redisOwnMs: number;
}

/** Measures each batch size through a bridge already running at `url`. */
export async function measureWindows(
  url: string,
  token: string,
  sizes: [batch: number, rounds: number][],
): Promise<WindowFigures[]> {
  const upstash = new UpstashWindowStore({ url, token, timeoutMs: 5000 });
  const out: WindowFigures[] = [];
  try {
    for (const [batch, rounds] of sizes) {
      const memory = await measure(new MemoryWindowStore(), batch, rounds);
      const before = await evalshaStats();
      const up = await measure(upstash, batch, rounds);
      const after = await evalshaStats();
      const redisOwnMs = (after.usec - before.usec) / Math.max(1, after.calls - before.calls) /
        1000;
      out.push({ batch, memory, upstash: up, redisOwnMs });
    }
  } finally {
    await upstash.close();
  }
  return out;
}

/** Item 4 of `deno task bench`. */
export async function benchWindows(b: Bench): Promise<void> {
  const bridge = await startBridge();
  const sizes: [number, number][] = b.smoke
    ? [[1, 100], [100, 30], [1000, 10]]
    : [[1, 2000], [100, 500], [1000, 200]];
  const figures = await measureWindows(bridge.url, bridge.token, sizes);
  await bridge.stop();
  b.report.details.windows = figures;
  for (const [i, f] of figures.entries()) {
    const ops = Math.round(f.upstash.opsPerBatch);
    b.report.add({
      id: `4${"abcdef"[2 * i]}`,
      what: `Window scoring, batch of ${f.batch} (${ops} ops), @upstash/redis → bridge → Redis, ` +
        `${f.upstash.rounds} rounds`,
      figure: `p50 ${fmtMs(f.upstash.p50)} / p99 ${fmtMs(f.upstash.p99)} ms`,
      value: f.upstash.p99,
      unit: "ms",
      limit: `Redis' own script time ${fmtMs(f.redisOwnMs)} ms`,
      ratio: `${(f.upstash.p50 / Math.max(f.redisOwnMs, 0.001)).toFixed(1)}× (p50)`,
      target: "p99 ≤ 5 ms",
      pass: f.upstash.p99 <= 5,
    });
    b.report.add({
      id: `4${"abcdef"[2 * i + 1]}`,
      what: `… same batches, in-memory windows`,
      figure: `p50 ${fmtMs(f.memory.p50)} / p99 ${fmtMs(f.memory.p99)} ms`,
      value: f.memory.p99,
      unit: "ms",
      target: "p99 ≤ 5 ms",
      pass: f.memory.p99 <= 5,
    });
  }
  if (figures.some((f) => f.upstash.p99 > 5)) {
    const worst = figures.filter((f) => f.upstash.p99 > 5).map((f) =>
      `batch ${f.batch}: client round trip p50 ${fmtMs(f.upstash.p50)} ms of which Redis ` +
      `executes ${fmtMs(f.redisOwnMs)} ms; in memory the same scoring takes ` +
      `${fmtMs(f.memory.p50)} ms`
    );
    b.report.limitedBy("4", worst.join("; "));
  }
}

if (import.meta.main) {
  const bridge = await startBridge();
  const fmt = (n: number) => n.toFixed(2).padStart(8);
  try {
    const figures = await measureWindows(bridge.url, bridge.token, [[1, 200], [100, 30], [
      500,
      30,
    ]]);
    console.log("fraud windows: FraudDetector.score() round trip per batch (ms), mixed traffic");
    console.log(
      "batch  store     ops/batch    p50      p95      p99   | Redis own time per batch (EVALSHA)",
    );
    for (const f of figures) {
      const line = (name: string, m: WindowFigures["memory"]) =>
        `${String(f.batch).padStart(5)}  ${name} ${fmt(m.opsPerBatch)} ${fmt(m.p50)} ${
          fmt(m.p95)
        } ${fmt(m.p99)}`;
      console.log(line("memory ", f.memory));
      console.log(`${line("upstash", f.upstash)}   | ${fmt(f.redisOwnMs)}`);
    }
  } finally {
    await runCleanups();
  }
}
