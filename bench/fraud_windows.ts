/**
 * Fraud window round trip per batch: `FraudDetector.score()` on realistic mixed traffic, through
 * the in-memory store and through @upstash/redis → the REST bridge → the real Redis, beside the
 * floor measured in the same run: the same number of Redis commands pipelined straight to Redis
 * over one connection (no HTTP, no JSON, no base64).
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

/** Counts the window ops (and the Redis commands they become) of one batch. */
function countOps(store: WindowStore) {
  let ops = 0, commands = 0;
  const counting: WindowStore = {
    kind: store.kind,
    run(batch: readonly WindowOp[]) {
      ops += batch.length;
      for (const op of batch) {
        commands += op.op === "zadd" ? 2 + (op.keep ? 1 : 0) + (op.minScore ? 1 : 0) : 1;
      }
      return store.run(batch);
    },
    ping: () => store.ping(),
    close: () => store.close(),
  };
  return { counting, get: () => ({ ops, commands }) };
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
  const { ops, commands } = get();
  const per = rounds + 3;
  return { ...stats(times), opsPerBatch: ops / per, commandsPerBatch: commands / per };
}

/** The floor: `n` cheap Redis commands pipelined on one connection, straight to Redis. */
async function floor(n: number, rounds: number) {
  const conn = await connectResp();
  const times: number[] = [];
  try {
    for (let r = 0; r < rounds + 3; r++) {
      const cmds = Array.from({ length: n }, (_, i) => ["ZCOUNT", `bench:floor:${i % 100}`, 0, 1]);
      const t0 = performance.now();
      await conn.send(cmds);
      if (r >= 3) times.push(performance.now() - t0);
    }
  } finally {
    conn.close();
  }
  return stats(times);
}

const token = crypto.randomUUID();
const bridge = await startUpstashBridge({ token });
const upstash = new UpstashWindowStore({ url: bridge.url, token, timeoutMs: 5000 });
const fmt = (n: number) => n.toFixed(2).padStart(8);
console.log("fraud windows: FraudDetector.score() round trip per batch (ms), mixed traffic");
console.log(
  "batch  store     ops/batch  cmds/batch   p50      p95   | floor p50 (same cmds, raw RESP)",
);
try {
  for (const batch of [1, 100, 500]) {
    const rounds = batch === 1 ? 200 : 30;
    const mem = await measure(new MemoryWindowStore(), batch, rounds);
    const up = await measure(upstash, batch, rounds);
    const base = await floor(Math.round(up.commandsPerBatch), rounds);
    console.log(
      `${String(batch).padStart(5)}  memory  ${fmt(mem.opsPerBatch)}   ${
        fmt(mem.commandsPerBatch)
      } ${fmt(mem.p50)} ${fmt(mem.p95)}`,
    );
    console.log(
      `${String(batch).padStart(5)}  upstash ${fmt(up.opsPerBatch)}   ${fmt(up.commandsPerBatch)} ${
        fmt(up.p50)
      } ${fmt(up.p95)}   | ${fmt(base.p50)}`,
    );
  }
} finally {
  await upstash.close();
  await bridge.close();
}
