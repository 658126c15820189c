/**
 * Fraud window round trip per batch: `FraudDetector.score()` on realistic mixed traffic, through
 * the in-memory store and through @upstash/redis → the REST bridge → the real Redis, beside the
 * floor measured in the same run: Redis' own execution time of the batch's script (INFO
 * commandstats), which no client can beat.
 *
 *   deno task bench          (Redis must be on 127.0.0.1:6379)
 *
 * @module
 */
import { FraudDetector } from "../pipeline/fraud/detector.ts";
import { DEFAULT_THRESHOLDS } from "../pipeline/fraud/rules.ts";
import { UpstashWindowStore } from "../pipeline/fraud/upstash.ts";
import { MemoryWindowStore, type WindowOp, type WindowStore } from "../pipeline/fraud/windows.ts";
import type { Envelope } from "../pipeline/schemas.ts";
import { connectResp, startUpstashBridge } from "../tests/fixtures/upstash_bridge.ts";

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

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { p50: q(0.5), p95: q(0.95) };
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
  return { ...stats(times), opsPerBatch: get() / (rounds + 3) };
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

const token = crypto.randomUUID();
const bridge = await startUpstashBridge({ token });
const upstash = new UpstashWindowStore({ url: bridge.url, token, timeoutMs: 5000 });
const fmt = (n: number) => n.toFixed(2).padStart(8);
console.log("fraud windows: FraudDetector.score() round trip per batch (ms), mixed traffic");
console.log(
  "batch  store     ops/batch    p50      p95   | Redis own time per batch (EVALSHA, mean)",
);
try {
  for (const batch of [1, 100, 500]) {
    const rounds = batch === 1 ? 200 : 30;
    const mem = await measure(new MemoryWindowStore(), batch, rounds);
    const before = await evalshaStats();
    const up = await measure(upstash, batch, rounds);
    const after = await evalshaStats();
    const redisMs = (after.usec - before.usec) / Math.max(1, after.calls - before.calls) / 1000;
    console.log(
      `${String(batch).padStart(5)}  memory  ${fmt(mem.opsPerBatch)} ${fmt(mem.p50)} ${
        fmt(mem.p95)
      }`,
    );
    console.log(
      `${String(batch).padStart(5)}  upstash ${fmt(up.opsPerBatch)} ${fmt(up.p50)} ${
        fmt(up.p95)
      }   | ${fmt(redisMs)}`,
    );
  }
} finally {
  await upstash.close();
  await bridge.close();
}
