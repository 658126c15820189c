/**
 * Integration: faults the gateway must survive without losing or duplicating an acknowledged
 * event — the broker going away and coming back, the lake becoming unwritable, a second worker
 * joining the consumer group mid-stream, and an LLM that never answers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startFakeOllama } from "./fixtures/fake_ollama.ts";
import { startUpstashBridge } from "./fixtures/upstash_bridge.ts";
import { alertLines, botAttack, randomIp } from "./fraud_helpers.ts";
import {
  assertCleanStop,
  clientEvent,
  type GatewayProcess,
  lastProblems,
  postEvents,
  startGateway,
  waitFor,
} from "./gateway_process.ts";
import { produce, removeDir, setup, teardown } from "./kafka_helpers.ts";
import { bronzeNextOffset, readBronze } from "./lake_helpers.ts";
import { sampleValue } from "./metrics_helpers.ts";
import { startPrivateBroker } from "./private_broker.ts";
import { LakeEngine } from "../lake/engine/engine.ts";
import { assertExactlyOnce, startClients } from "./clients.ts";

/** `deno task soak` sets SOAK=N: N times the kills and the traffic of the CI run. */
const SOAK = Math.max(1, Number(Deno.env.get("SOAK") ?? 1));

const ok = (gw: GatewayProcess) => async () => (await fetch(`${gw.url}/health`)).ok;

/** The gateway's log line when it restarts a consumer kafkajs gave up on (main.ts). */
const RESTARTED = "The Kafka consumer crashed and kafkajs gave up on it; restarting it";

Deno.test("faults: the broker stopped and restarted mid-stream → 503 with Retry-After, then resumes; nothing lost", async () => {
  const broker = await startPrivateBroker();
  const root = await Deno.makeTempDir({ prefix: "fault_broker_" });
  const engine = new LakeEngine();
  const lake = join(root, "lake");
  const gw = await startGateway({
    KAFKA_BROKERS: broker.brokers,
    KAFKA_GROUP_ID: "fault-broker",
    KAFKA_SESSION_TIMEOUT_MS: "6000",
    LAKE_DIR: lake,
    LAKE_FLUSH_INTERVAL_MS: "300",
    INGEST_TIMEOUT_MS: "2000",
  });
  const clients = startClients(() => gw.url);
  try {
    await waitFor(() => Promise.resolve(clients.acked.size >= 1000), 20_000, 50);
    await broker.stop();
    const ackedWhileUp = clients.acked.size;
    // With the broker gone, requests are refused with a Retry-After instead of piling up.
    assert.ok(
      await waitFor(() => Promise.resolve(clients.retryAfter > 0), 20_000, 100),
      `no 503 with Retry-After while the broker was down: ${JSON.stringify([...clients.statuses])}`,
    );
    assert.ok(await ok(gw)(), "the process stays up while the broker is down");
    await broker.start();
    assert.ok(
      await waitFor(() => Promise.resolve(clients.acked.size > ackedWhileUp + 500), 60_000, 100),
      "ingest did not resume after the broker came back",
    );
    await clients.stop();
    assert.ok(
      await waitFor(
        async () => (await readBronze(engine, lake)).length >= clients.acked.size,
        60_000,
      ),
      "acknowledged events did not reach bronze",
    );
    assertExactlyOnce(await readBronze(engine, lake), clients.acked);
    const ready = await (await fetch(`${gw.url}/ready`)).json();
    assert.equal(ready.dependencies["kafka consumer"].state, "ok", JSON.stringify(ready));
    console.log(
      `broker outage: ${clients.acked.size} events acknowledged, statuses ${
        JSON.stringify(Object.fromEntries(clients.statuses))
      }, 0 lost, 0 duplicated; consumer crashes: ${
        gw.logs.filter((l) => typeof l.msg === "string" && l.msg.startsWith("Crash:")).length
      }, restarted by the input: ${gw.logs.filter((l) => l.msg === RESTARTED).length}`,
    );
  } finally {
    await clients.stop();
    try {
      await assertCleanStop(gw);
    } finally {
      engine.close();
      await broker.remove(); // a broker left running would hold its ports and a core's worth of JVM
      await removeDir(root);
    }
  }
});

Deno.test("faults: an unwritable lake → 503, /ready down, no commit; recovers when writable", async () => {
  const root = await Deno.makeTempDir({ prefix: "fault_disk_" });
  const engine = new LakeEngine();
  const lake = join(root, "lake");
  const gw = await startGateway({
    LAKE_DIR: lake,
    WAL_DIR: join(root, "wal"),
    DEAD_LETTER_DIR: join(root, "dlq"),
    LAKE_FLUSH_INTERVAL_MS: "200",
    INGEST_MAX_LAG_EVENTS: "500",
  });
  const clients = startClients(() => gw.url, 1);
  try {
    await waitFor(async () => (await readBronze(engine, lake)).length >= 200, 20_000);
    // The lake directory turns into something no write can go through (root ignores chmod).
    await Deno.rename(lake, `${lake}.away`);
    await Deno.writeTextFile(lake, "not a directory");
    const committed = await bronzeNextOffset(engine, `${lake}.away`, "wal", 0);

    assert.ok(
      await waitFor(() => Promise.resolve(clients.retryAfter > 0), 20_000, 100),
      `no 503 with Retry-After while the lake was unwritable: ${
        JSON.stringify([...clients.statuses])
      }`,
    );
    const ready = await fetch(`${gw.url}/ready`);
    const body = await ready.json();
    assert.equal(ready.status, 503);
    assert.equal(body.dependencies["lake disk"].state, "down");
    assert.ok(await ok(gw)());

    await Deno.remove(lake);
    assert.equal(
      await bronzeNextOffset(engine, `${lake}.away`, "wal", 0),
      committed,
      "an offset moved while the lake was unwritable",
    );
    await Deno.rename(`${lake}.away`, lake);

    let lastReady = "";
    assert.ok(
      await waitFor(async () => {
        const r = await fetch(`${gw.url}/ready`);
        lastReady = await r.text();
        return r.status === 200;
      }, 30_000),
      `/ready did not recover: ${lastReady}; the gateway said: ${lastProblems(gw)}`,
    );
    const before = clients.acked.size;
    assert.ok(await waitFor(() => Promise.resolve(clients.acked.size > before + 200), 30_000, 100));
    await clients.stop();
    assert.ok(
      await waitFor(
        async () => (await readBronze(engine, lake)).length >= clients.acked.size,
        30_000,
      ),
    );
    assertExactlyOnce(await readBronze(engine, lake), clients.acked);
    await assertCleanStop(gw);
  } finally {
    await clients.stop();
    await gw.stop(); // a no-op after the clean stop; a failed test must not be hidden by its own
    engine.close();
    await removeDir(root);
  }
});

Deno.test("faults: a second worker joins and the first leaves mid-stream → exactly once in bronze", async () => {
  const s = await setup("rebalance", 6);
  const ids: string[] = [];
  const events = Array.from({ length: 30_000 * SOAK }, (_, i) => {
    const e = clientEvent(i);
    ids.push(e.event_id as string);
    return JSON.stringify(e);
  });
  const env = { ...s.env, ROLE: "worker", LAKE_FLUSH_ROWS: "2000" };
  const a = await startGateway(env);
  let b: GatewayProcess | undefined;
  try {
    const producing = produce(s.events, events);
    await waitFor(async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= 3000, 30_000);
    b = await startGateway(env); // rebalance: partitions move to b mid-stream
    await waitFor(
      () => Promise.resolve(b!.logs.some((l) => /^Joined the consumer group$/.test(String(l.msg)))),
      30_000,
    );
    await producing;
    const joinedB = b.logs.filter((l) => l.msg === "Joined the consumer group");
    assert.ok(
      joinedB.some((l) => (l.partitions as string[]).length > 0),
      "the second worker never got a partition",
    );
    await assertCleanStop(a); // rebalance again: b takes everything
    assert.ok(
      await waitFor(
        async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= ids.length,
        90_000,
      ),
      "not every produced event reached bronze",
    );
    const rows = await readBronze(s.engine, s.env.LAKE_DIR!);
    assertExactlyOnce(rows, new Set(ids));
    assert.equal(rows.length, ids.length);
  } finally {
    await a.stop("SIGTERM");
    if (b) await assertCleanStop(b);
    await teardown(s);
  }
});

Deno.test("faults: an LLM that never answers → alerts on rules, no consumer rebalance", async () => {
  const s = await setup("llmhang");
  const ollama = await startFakeOllama();
  ollama.setMode({ kind: "hang" });
  const gw = await startGateway({
    ...s.env,
    OLLAMA_HOST: ollama.url,
    // Each LLM attempt outlasts the 6 s session timeout: only heartbeats keep the member alive.
    OLLAMA_TIMEOUT_MS: "7000",
  });
  try {
    const bot = `hang-bot-${crypto.randomUUID().slice(0, 8)}`;
    const attack = botAttack(bot, Date.now(), randomIp());
    await produce(s.events, attack.map((e) => JSON.stringify(e)), () => bot);
    assert.ok(
      await waitFor(() => Promise.resolve(alertLines(gw, bot).length > 0), 90_000),
      "no alert while the LLM hung",
    );
    const line = alertLines(gw, bot)[0]!;
    assert.equal((line.llm as { status: string }).status, "unavailable");
    assert.equal(line.fraud_score, 0.9, "the rules' score stands in for the LLM's");
    assert.ok(
      await waitFor(
        async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= attack.length,
        30_000,
      ),
    );
    const joins = gw.logs.filter((l) => /^Joined the consumer group$/.test(String(l.msg)));
    assert.equal(
      joins.length,
      1,
      `the member rejoined ${joins.length - 1} times: a rebalance loop`,
    );
    assert.ok(ollama.requests.length >= 1);
  } finally {
    await ollama.close();
    await assertCleanStop(gw);
    await teardown(s);
  }
});

Deno.test(`faults: SIGKILL ${3 * SOAK} times while ingesting over HTTP and from Kafka → exactly once`, async () => {
  const s = await setup("killhttp");
  const env = { ...s.env, LAKE_FLUSH_ROWS: "500", LAKE_FLUSH_INTERVAL_MS: "300" };
  const produced = Array.from({ length: 20_000 * SOAK }, (_, i) => clientEvent(i));
  let gw = await startGateway(env);
  const clients = startClients(() => gw.url);
  try {
    const producing = produce(s.events, produced.map((e) => JSON.stringify(e)));
    for (let round = 0; round < 3 * SOAK; round++) {
      const before = clients.acked.size;
      await waitFor(() => Promise.resolve(clients.acked.size >= before + 400), 30_000, 20);
      await gw.stop("SIGKILL");
      gw = await startGateway(env);
    }
    await producing;
    await new Promise((r) => setTimeout(r, 500));
    await clients.stop();
    const expected = new Set([...clients.acked, ...produced.map((e) => e.event_id as string)]);
    assert.ok(
      await waitFor(
        async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= expected.size,
        120_000,
        500,
      ),
      "bronze did not catch up",
    );
    const rows = await readBronze(s.engine, s.env.LAKE_DIR!);
    assertExactlyOnce(rows, expected);
    console.log(
      `SIGKILL x${
        3 * SOAK
      }: ${clients.acked.size} HTTP-acknowledged + ${produced.length} produced events, ` +
        `${rows.length} bronze rows, 0 lost, 0 duplicated`,
    );
  } finally {
    await clients.stop();
    await assertCleanStop(gw);
    await teardown(s);
  }
});

Deno.test("faults: the Upstash bridge down → scoring degrades with a metric and a log line; ingest goes on", async () => {
  const root = await Deno.makeTempDir({ prefix: "fault_redis_" });
  const token = crypto.randomUUID();
  const bridge = await startUpstashBridge({ token });
  const gw = await startGateway({
    LAKE_DIR: join(root, "lake"),
    WAL_DIR: join(root, "wal"),
    DEAD_LETTER_DIR: join(root, "dlq"),
    LAKE_FLUSH_INTERVAL_MS: "200",
    UPSTASH_REDIS_REST_URL: bridge.url,
    UPSTASH_REDIS_REST_TOKEN: token,
    WINDOW_TIMEOUT_MS: "500",
  });
  const degradedCount = async () =>
    sampleValue(
      await (await fetch(`${gw.url}/metrics`)).text(),
      "streamgate_fraud_scoring_degraded_total",
    ) ?? 0;
  try {
    const batch = () => Array.from({ length: 20 }, (_, i) => clientEvent(i));
    assert.equal((await postEvents(gw.url, batch())).status, 202);
    await new Promise((r) => setTimeout(r, 600)); // scored with windows
    assert.equal(await degradedCount(), 0);

    await bridge.close();
    const bot = `redis-down-bot-${crypto.randomUUID().slice(0, 8)}`;
    const res = await postEvents(gw.url, [...batch(), ...botAttack(bot, Date.now(), randomIp())]);
    assert.equal(res.status, 202, "ingest must not depend on the window store");
    assert.ok(
      await waitFor(async () => (await degradedCount()) >= 36, 15_000),
      "no degraded metric",
    );
    assert.ok(
      gw.logs.some((l) =>
        l.msg === "Fraud scoring degraded: stateless rules only until the windows answer"
      ),
      "no log line saying scoring degraded",
    );
    const ready = await (await fetch(`${gw.url}/ready`)).json();
    assert.equal(ready.dependencies["windows (upstash)"].state, "down");
    assert.equal(ready.status, "ready", "a window store outage does not stop ingest");
  } finally {
    await bridge.close().catch(() => {});
    await assertCleanStop(gw);
    await removeDir(root);
  }
});
