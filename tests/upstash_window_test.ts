/**
 * Tests of {@link UpstashWindowStore} through the Upstash REST bridge in front of the real Redis
 * on 127.0.0.1:6379: the window store contract, plus one request per batch, errors and timeouts.
 * They fail (never skip) when Redis is unreachable: starting the bridge pings it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { UpstashWindowStore } from "../pipeline/fraud/upstash.ts";
import type { WindowOp } from "../pipeline/fraud/windows.ts";
import { connectResp, startUpstashBridge, type UpstashBridge } from "./fixtures/upstash_bridge.ts";
import { windowStoreContract } from "./window_store_contract.ts";

const decoder = new TextDecoder();

/** Runs one command on a direct Redis connection. */
async function redisCommand(...command: string[]) {
  const conn = await connectResp();
  try {
    const [reply] = await conn.send([command]);
    assert.ok(reply !== undefined);
    return reply;
  } finally {
    conn.close();
  }
}

/** Redis' PTTL of `key`, read directly (not through the store under test). */
async function pttl(key: string): Promise<number> {
  const reply = await redisCommand("PTTL", key);
  assert.equal(reply.type, "integer");
  return reply.value as number;
}

/** Deletes every key under `prefix`. */
async function deleteKeys(prefix: string): Promise<void> {
  const conn = await connectResp();
  try {
    let cursor = "0";
    do {
      const [reply] = await conn.send([["SCAN", cursor, "MATCH", `${prefix}*`, "COUNT", 1000]]);
      assert.ok(reply?.type === "array" && reply.value !== null);
      const [next, keys] = reply.value;
      assert.ok(next?.type === "bulk" && next.value !== null);
      assert.ok(keys?.type === "array" && keys.value !== null);
      cursor = decoder.decode(next.value);
      const names = keys.value.flatMap((key) =>
        key.type === "bulk" && key.value !== null ? [key.value] : []
      );
      if (names.length > 0) await conn.send([["DEL", ...names]]);
    } while (cursor !== "0");
  } finally {
    conn.close();
  }
}

interface Harness {
  bridge: UpstashBridge;
  store: UpstashWindowStore;
  prefix: string;
  /** Paths of the HTTP requests the bridge received, in order. */
  paths: string[];
  cleanup: () => Promise<void>;
}

async function startHarness(): Promise<Harness> {
  const paths: string[] = [];
  const bridge = await startUpstashBridge({
    token: crypto.randomUUID(),
    onRequest: (info) => paths.push(info.path),
  });
  const prefix = `window-store-test:${crypto.randomUUID()}:`;
  const store = new UpstashWindowStore({ url: bridge.url, token: bridge.token });
  const cleanup = async () => {
    try {
      await store.close();
      await deleteKeys(prefix);
    } finally {
      await bridge.close();
    }
  };
  return { bridge, store, prefix, paths, cleanup };
}

async function withHarness(fn: (harness: Harness) => Promise<void>): Promise<void> {
  const harness = await startHarness();
  try {
    await fn(harness);
  } finally {
    await harness.cleanup();
  }
}

windowStoreContract("UpstashWindowStore", async () => {
  const { store, prefix, cleanup } = await startHarness();
  return {
    store,
    prefix,
    cleanup,
    pttl,
    advance: (ms: number) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
});

/** 500 events × (zadd with keep and minScore + zcount), as the detector sends them. */
function batch(prefix: string, events: number): WindowOp[] {
  const t0 = Date.now();
  return Array.from({ length: events }, (_, i): WindowOp[] => {
    const key = `${prefix}u${i % 50}`;
    const at = t0 + i;
    return [
      {
        op: "zadd",
        key,
        member: `e${i}`,
        score: at,
        ttlMs: 120_000,
        keep: 100,
        minScore: at - 60_000,
      },
      { op: "zcount", key, min: at - 60_000, max: at },
    ];
  }).flat();
}

Deno.test("UpstashWindowStore: 500 zadd+zcount pairs are one /pipeline request", async () => {
  await withHarness(async ({ store, prefix, paths }) => {
    const results = await store.run(batch(prefix, 500));
    assert.equal(results.length, 1000);
    assert.deepEqual(results.slice(0, 4), [null, 1, null, 1]);
    assert.deepEqual(results.slice(-2), [null, 10]);
    assert.deepEqual(paths, ["/pipeline"]);
  });
});

Deno.test("UpstashWindowStore: an empty run sends nothing; ping() sends PING", async () => {
  await withHarness(async ({ store, paths }) => {
    assert.deepEqual(await store.run([]), []);
    assert.deepEqual(paths, []);
    await store.ping();
    assert.deepEqual(paths, ["/"]);
  });
});

Deno.test("UpstashWindowStore: members are written to Redis as given", async () => {
  await withHarness(async ({ store, prefix }) => {
    const key = `${prefix}raw`;
    const member = '{"event_id":"e1","country":"FR"}';
    await store.run([{ op: "zadd", key, member, score: 1.5, ttlMs: 60_000 }]);
    const reply = await redisCommand("ZRANGE", key, "0", "-1", "WITHSCORES");
    assert.ok(reply.type === "array" && reply.value !== null);
    const items = reply.value.map((item) =>
      item.type === "bulk" && item.value !== null ? decoder.decode(item.value) : item
    );
    assert.deepEqual(items, [member, "1.5"]);
  });
});

Deno.test("UpstashWindowStore: a Redis error names the op that failed", async () => {
  await withHarness(async ({ store, prefix }) => {
    const key = `${prefix}c`;
    await store.run([{ op: "claim", key, value: "v", ttlMs: 60_000 }]);
    await assert.rejects(
      store.run([
        { op: "zcount", key: `${prefix}z`, min: 0, max: 1 },
        { op: "zadd", key, member: "m", score: 1, ttlMs: 60_000 },
      ]),
      (error: Error) => {
        assert.match(
          error.message,
          /^Upstash window store: op 1 \(zadd ".*:c"\) failed: WRONGTYPE Operation against/,
        );
        return true;
      },
    );
  });
});

Deno.test("UpstashWindowStore: a wrong token rejects at once, without retries", async () => {
  await withHarness(async ({ bridge, paths }) => {
    const store = new UpstashWindowStore({ url: bridge.url, token: "wrong-token" });
    await assert.rejects(
      store.run([{ op: "zcount", key: "window-store-test:x", min: 0, max: 1 }]),
      /^Error: Upstash window store: Unauthorized$/,
    );
    await assert.rejects(store.ping(), /^Error: Upstash window store: Unauthorized$/);
    assert.deepEqual(paths, ["/pipeline", "/"]);
  });
});

const op: WindowOp = { op: "zcount", key: "window-store-test:x", min: 0, max: 1 };

Deno.test("UpstashWindowStore: an unreachable URL rejects after its retries", async () => {
  // Port 1 is refused by fetch itself; a port nothing listens on is refused by the OS.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const freePort = listener.addr.port;
  listener.close();
  for (const url of ["http://127.0.0.1:1", `http://127.0.0.1:${freePort}`]) {
    const store = new UpstashWindowStore({ url, token: "t", timeoutMs: 300, retries: 2 });
    const started = performance.now();
    await assert.rejects(
      store.run([op]),
      /^Error: Upstash window store: .+ \(after 3 attempts\)$/,
    );
    // Bounded, not hanging: 3 × 300 ms timeouts + backoff; the bound only catches a hang.
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 10_000, `${url}: took ${elapsed.toFixed(0)} ms`);
  }
});

Deno.test("UpstashWindowStore: a server that never answers times out each attempt", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) conns.push(conn); // accept, never answer
  })();
  try {
    const url = `http://127.0.0.1:${listener.addr.port}`;
    const store = new UpstashWindowStore({ url, token: "t", timeoutMs: 200, retries: 2 });
    const started = performance.now();
    await assert.rejects(
      store.run([op]),
      /^Error: Upstash window store: no answer within 200 ms \(after 3 attempts\)$/,
    );
    const elapsed = performance.now() - started;
    // 3 × 200 ms + backoff; the bound only catches a hang.
    assert.ok(elapsed < 10_000, `took ${elapsed.toFixed(0)} ms`);
    assert.equal(conns.length, 3);
    await assert.rejects(store.ping(), /no answer within 200 ms \(after 3 attempts\)/);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of conns) conn.close();
  }
});

Deno.test("UpstashWindowStore: checks its options", () => {
  assert.throws(() => new UpstashWindowStore({ url: "", token: "t" }), TypeError);
  assert.throws(() => new UpstashWindowStore({ url: "http://x", token: "" }), TypeError);
  assert.throws(
    () => new UpstashWindowStore({ url: "http://x", token: "t", timeoutMs: 0 }),
    RangeError,
  );
  assert.throws(
    () => new UpstashWindowStore({ url: "http://x", token: "t", retries: -1 }),
    RangeError,
  );
  assert.throws(
    () => new UpstashWindowStore({ url: "not a url", token: "t" }),
    /^TypeError: Upstash window store: .*invalid URL/,
  );
});
