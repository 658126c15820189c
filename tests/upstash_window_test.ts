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

/**
 * A proxy in front of the bridge that records the command names of each request and, when told,
 * answers the next request holding only EVALSHA with NOSCRIPT (as Redis does once its script cache
 * is gone), without flushing the scripts of the shared Redis.
 */
function startRecorder(bridge: UpstashBridge) {
  /** Per request: its path and the (lower-case) names of its commands. */
  const requests: { path: string; commands: string[] }[] = [];
  let noScript = false;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = new URL(request.url).pathname;
    const body = await request.text();
    const parsed: unknown = JSON.parse(body);
    const commands = (path === "/pipeline" ? parsed as unknown[][] : [parsed as unknown[]])
      .map((command) => String(command[0]).toLowerCase());
    requests.push({ path, commands });
    if (noScript && commands.length === 1 && commands[0] === "evalsha") {
      noScript = false;
      return Response.json([{ error: "NOSCRIPT No matching script. Please use EVAL." }]);
    }
    return await fetch(`${bridge.url}${path}`, { method: "POST", headers: request.headers, body });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    /** The next request with EVALSHA alone gets NOSCRIPT. */
    failNextEvalsha: () => noScript = true,
    close: () => server.shutdown(),
  };
}

Deno.test("UpstashWindowStore: every run is ONE /pipeline request, 500 events or 1", async () => {
  await withHarness(async ({ bridge, prefix }) => {
    const recorder = startRecorder(bridge);
    try {
      // Auto-pipelining is off; the store sends an explicit pipeline, so always to /pipeline.
      const store = new UpstashWindowStore({ url: recorder.url, token: bridge.token });
      const results = await store.run(batch(prefix, 500));
      assert.equal(results.length, 1000);
      assert.deepEqual(results.slice(0, 4), [null, 1, null, 1]);
      assert.deepEqual(results.slice(-2), [null, 10]);
      // The first run loads the script in the same request; later runs only call it.
      assert.equal((await store.run(batch(prefix, 1))).length, 2);
      assert.equal((await store.run(batch(prefix, 500))).length, 1000);
      assert.deepEqual(recorder.requests, [
        { path: "/pipeline", commands: ["script", "evalsha"] },
        { path: "/pipeline", commands: ["evalsha"] },
        { path: "/pipeline", commands: ["evalsha"] },
      ]);
    } finally {
      await recorder.close();
    }
  });
});

Deno.test("UpstashWindowStore: NOSCRIPT reloads the script, then one request a run", async () => {
  await withHarness(async ({ bridge, prefix }) => {
    const recorder = startRecorder(bridge);
    try {
      const store = new UpstashWindowStore({ url: recorder.url, token: bridge.token });
      const key = `${prefix}z`;
      const count: WindowOp = { op: "zcount", key, min: -Infinity, max: Infinity };
      await store.run([{ op: "zadd", key, member: "a", score: 1, ttlMs: 60_000 }]);
      recorder.failNextEvalsha();
      assert.deepEqual(await store.run([count]), [1]);
      assert.deepEqual(await store.run([count]), [1]);
      assert.deepEqual(recorder.requests.map((request) => request.commands), [
        ["script", "evalsha"],
        ["evalsha"], // NOSCRIPT
        ["script", "evalsha"],
        ["evalsha"],
      ]);
    } finally {
      await recorder.close();
    }
  });
});

Deno.test("UpstashWindowStore: scores round-trip exactly, however large or small", async () => {
  await withHarness(async ({ store, prefix }) => {
    const key = `${prefix}z`;
    const scores = [
      -Number.MAX_VALUE,
      -(2 ** 60) - 2048,
      -1e-300,
      5e-324,
      0.1 + 0.2,
      1 / 3,
      1_700_000_000_123.456,
      2 ** 53 + 2,
      1.7976931348623157e308,
    ];
    await store.run(
      scores.map((score, i) => ({ op: "zadd", key, member: `m${i}`, score, ttlMs: 60_000 })),
    );
    const [range] = await store.run([{
      op: "zrange",
      key,
      min: -Infinity,
      max: Infinity,
      limit: 100,
    }]);
    assert.deepEqual(range, scores.map((score, i) => ({ member: `m${i}`, score })));
  });
});

Deno.test("UpstashWindowStore: a lone surrogate is stored as U+FFFD, as UTF-8 has it", async () => {
  await withHarness(async ({ store, prefix }) => {
    const key = `${prefix}z`;
    await store.run([{ op: "zadd", key, member: "a\ud800b", score: 1, ttlMs: 60_000 }]);
    assert.deepEqual(await store.run([{ op: "zrange", key, min: 0, max: 1, limit: 1 }]), [
      [{ member: "a\ufffdb", score: 1 }],
    ]);
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

Deno.test("UpstashWindowStore: a Redis error names the op that failed, and stops there", async () => {
  await withHarness(async ({ store, prefix }) => {
    const key = `${prefix}c`;
    const before = `${prefix}before`;
    const after = `${prefix}after`;
    await store.run([{ op: "claim", key, value: "v", ttlMs: 30_000 }]);
    await assert.rejects(
      store.run([
        { op: "zcount", key: `${prefix}z`, min: 0, max: 1 },
        { op: "zadd", key: before, member: "m", score: 1, ttlMs: 60_000 },
        { op: "zadd", key, member: "m", score: 1, ttlMs: 90_000 },
        { op: "zadd", key: after, member: "m", score: 1, ttlMs: 60_000 },
      ]),
      (error: Error) => {
        assert.match(
          error.message,
          /^Upstash window store: op 2 \(zadd ".*:c"\) failed: WRONGTYPE Operation against/,
        );
        return true;
      },
    );
    // The ops before the failed one stay applied, the ones after it never ran, and the failed
    // zadd did not go on to set its TTL on the key it failed on.
    assert.ok(await pttl(before) > 0);
    assert.equal(await pttl(after), -2);
    const ttl = await pttl(key);
    assert.ok(ttl > 0 && ttl <= 30_000, `PTTL ${ttl}`);
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
