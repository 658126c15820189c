/**
 * Integration: faults of the Delta lake, on local disk and on S3 (s3proxy), checked with Delta's
 * own Java reader and by event id: no event lost, none twice, no table the reader refuses.
 *
 * - A worker SIGKILLed during an upload and during a commit. The kill lands in that window by a
 *   test hook of the product, `LAKE_TEST_STALL` (`lake/storage/stall.ts`): the store stops for good
 *   at the second bronze file upload, or right after a bronze commit is created, and logs it; the
 *   test kills the process when it sees the line.
 * - Two workers sharing the partitions of one topic on s3proxy, one SIGKILLed mid-stream.
 * - The S3 store hanging, down, answering 403, answering 500 (a fault proxy in front of s3proxy,
 *   `tests/fixtures/s3_fault_proxy.ts`): Kafka offsets are not committed, the worker keeps its
 *   group membership, and it catches up when the store returns; in embedded mode, HTTP ingest
 *   answers 503 with Retry-After meanwhile.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertCleanStop,
  clientEvent,
  type GatewayProcess,
  lastProblems,
  startGateway,
  waitFor,
} from "./gateway_process.ts";
import { kafka, produce, removeDir, setup, teardown } from "./kafka_helpers.ts";
import {
  assertBronzeExactlyOnce,
  bronzeRecords,
  S3_TEST,
  STORE_KINDS,
  type TestLake,
  testLake,
} from "./lake_store_helpers.ts";
import { readBronzeOf } from "./lake_helpers.ts";
import { startClients } from "./clients.ts";
import { S3FaultProxy } from "./fixtures/s3_fault_proxy.ts";
import { Lake } from "../lake/lake.ts";
import { LakeEngine } from "../lake/engine/engine.ts";
import { STALLED } from "../lake/storage/stall.ts";

const JOINED = "Joined the consumer group";
const logged = (gw: GatewayProcess, msg: string) => () =>
  Promise.resolve(gw.logs.some((l) => l.msg === msg));

/** A worker's environment: Kafka in, the test lake out, no cron. */
function workerEnv(s: Awaited<ReturnType<typeof setup>>, lake: TestLake, flushRows = 500) {
  return {
    ...s.env,
    ...lake.env,
    ROLE: "worker",
    JOBS_CRON: "off",
    LAKE_FLUSH_ROWS: String(flushRows),
    LAKE_FLUSH_INTERVAL_MS: "300",
  };
}

/** The project's own view of the lake, to wait for bronze to catch up (never to check it). */
async function openOwn(lake: TestLake, engine: LakeEngine) {
  const store = await lake.open();
  return { lake: new Lake(store, engine), close: () => store.close() };
}

/** Sum of the group's committed offsets on `topic` (-1 = none counts as 0). */
async function committedOffsets(groupId: string, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return (t?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
  } finally {
    await admin.disconnect();
  }
}

for (const kind of STORE_KINDS) {
  Deno.test(`delta faults on ${kind}: SIGKILL during an upload, then during a commit; the restart has every event once`, async () => {
    const s = await setup(`dkill-${kind}`, 3);
    const lake = testLake(kind, s.root);
    const events = Array.from({ length: 6000 }, (_, i) => clientEvent(i));
    const own = await openOwn(lake, s.engine);
    let gw: GatewayProcess | undefined;
    try {
      await produce(s.events, events.map((e) => JSON.stringify(e)));
      const env = workerEnv(s, lake);
      for (const point of ["upload", "commit"]) {
        gw = await startGateway({ ...env, LAKE_TEST_STALL: point });
        assert.ok(
          await waitFor(logged(gw, STALLED), 60_000, 20),
          `the store never stalled at ${point}: ${lastProblems(gw)}`,
        );
        await gw.stop("SIGKILL");
      }
      assert.ok(await bronzeRecords(own.lake, s.events, 3) > 0, "the killed commit is durable");
      gw = await startGateway(env);
      assert.ok(
        await waitFor(
          async () => await bronzeRecords(own.lake, s.events, 3) >= events.length,
          90_000,
          300,
        ),
        `bronze did not catch up: ${lastProblems(gw)}`,
      );
      await assertCleanStop(gw);
      const stopped = gw.logs.find((l) => l.msg === "Stopped");
      assert.ok(
        Number(stopped?.redelivered) > 0,
        `the restart skipped none of what the killed commit holds: ${JSON.stringify(stopped)}`,
      );
      gw = undefined;
      const bronze = await assertBronzeExactlyOnce(
        lake,
        new Set(events.map((e) => e.event_id as string)),
      );
      console.log(
        `${kind}: 2 kills, ${events.length} events once each in bronze v${bronze.version} ` +
          `(${stopped?.redelivered} redelivered records skipped)`,
      );
    } finally {
      await gw?.stop("SIGKILL");
      await own.close();
      await teardown(s);
      await lake.cleanup();
    }
  });
}

Deno.test("delta faults on s3: two workers share one topic's partitions, one SIGKILLed and restarted mid-stream → every event once", async () => {
  const s = await setup("dshare", 6);
  const lake = testLake("s3", s.root); // one LAKE_CACHE_DIR for both workers, as on one host
  const events = Array.from({ length: 12_000 }, (_, i) => clientEvent(i));
  const own = await openOwn(lake, s.engine);
  const env = workerEnv(s, lake, 1000);
  const workers: GatewayProcess[] = [];
  try {
    workers.push(await startGateway(env), await startGateway(env));
    const producing = produce(s.events, events.map((e) => JSON.stringify(e)));
    await waitFor(async () => await bronzeRecords(own.lake, s.events, 6) >= 3000, 60_000, 200);
    const held = (gw: GatewayProcess) =>
      gw.logs.filter((l) => l.msg === JOINED).at(-1)?.partitions as string[] | undefined;
    assert.ok(held(workers[1]!)?.length, "the second worker never got a partition");
    await workers[0]!.stop("SIGKILL"); // its partitions go to the other one, then come back
    workers[0] = await startGateway(env);
    await producing;
    assert.ok(
      await waitFor(
        async () => await bronzeRecords(own.lake, s.events, 6) >= events.length,
        90_000,
        300,
      ),
      `bronze did not catch up: ${lastProblems(workers[0])} ${lastProblems(workers[1]!)}`,
    );
    for (const gw of workers.splice(0)) await assertCleanStop(gw);
    await assertBronzeExactlyOnce(lake, new Set(events.map((e) => e.event_id as string)));
  } finally {
    for (const gw of workers) await gw.stop("SIGKILL");
    await own.close();
    await teardown(s);
    await lake.cleanup();
  }
});

Deno.test("delta faults on s3: the store hanging, down, then 403, then 500 → no offset committed, the member stays; it catches up after", async () => {
  const proxy = await S3FaultProxy.start(S3_TEST.endpoint);
  const s = await setup("doutage", 3);
  const lake = testLake("s3", s.root, proxy.endpoint);
  const own = await openOwn(lake, s.engine); // straight to s3proxy, not through the proxy
  const gw = await startGateway(workerEnv(s, lake, 200));
  const sent: string[] = [];
  const send = async (n: number) => {
    const batch = Array.from({ length: n }, (_, i) => clientEvent(i));
    sent.push(...batch.map((e) => e.event_id as string));
    await produce(s.events, batch.map((e) => JSON.stringify(e)));
  };
  const group = s.env.KAFKA_GROUP_ID!;
  const readyState = async () => {
    const r = await fetch(`${gw.url}/ready`);
    return { status: r.status, lake: (await r.json()).dependencies?.["lake store"]?.state };
  };
  try {
    await send(600);
    assert.ok(await waitFor(async () => await committedOffsets(group, s.events) === 600, 60_000));
    // Hanging: a flush waits on requests that never end, far past the session timeout (6 s).
    await proxy.set("hang");
    await send(900); // over LAKE_FLUSH_ROWS per partition: a flush inside the consumer's batch
    assert.ok(
      await waitFor(async () => (await readyState()).lake === "down", 30_000),
      "the hanging store never showed on /ready",
    );
    await new Promise((r) => setTimeout(r, 8_000)); // past the 6 s session timeout
    for (const mode of ["down", 403, 500] as const) {
      await proxy.set(mode);
      const failures = gw.logs.filter((l) => l.msg === "Lake flush failed; will retry").length;
      await send(300);
      assert.ok(
        await waitFor(
          () =>
            Promise.resolve(
              gw.logs.filter((l) => l.msg === "Lake flush failed; will retry").length >
                failures + 2,
            ),
          30_000,
        ),
        `no failing flush with the store ${mode}: ${lastProblems(gw)}`,
      );
      assert.deepEqual(await readyState(), { status: 503, lake: "down" }, `store ${mode}`);
      assert.equal(await committedOffsets(group, s.events), 600, `an offset moved (store ${mode})`);
    }
    assert.ok(proxy.refused > 0);
    await proxy.set("pass");
    assert.ok(
      await waitFor(async () => await committedOffsets(group, s.events) === sent.length, 60_000),
      `the worker did not catch up: ${lastProblems(gw)}`,
    );
    assert.equal(await bronzeRecords(own.lake, s.events, 3), sent.length);
    assert.equal((await readyState()).status, 200);
    const joins = gw.logs.filter((l) => l.msg === JOINED).length;
    assert.equal(joins, 1, `the member rejoined ${joins - 1} times during the outage`);
    await assertCleanStop(gw);
    await assertBronzeExactlyOnce(lake, new Set(sent));
  } finally {
    await gw.stop("SIGKILL");
    await proxy.close();
    await own.close();
    await teardown(s);
    await lake.cleanup();
  }
});

Deno.test("delta faults on s3: HTTP ingest answers 503 with Retry-After while the store is down, and recovers", async () => {
  const proxy = await S3FaultProxy.start(S3_TEST.endpoint);
  const root = await Deno.makeTempDir({ prefix: "dfault_http_" });
  const lake = testLake("s3", root, proxy.endpoint);
  const engine = new LakeEngine();
  const own = await openOwn(lake, engine);
  const gw = await startGateway({
    ...lake.env,
    WAL_DIR: join(root, "wal"),
    DEAD_LETTER_DIR: join(root, "dlq"),
    LAKE_FLUSH_INTERVAL_MS: "200",
    INGEST_MAX_LAG_EVENTS: "300",
  });
  const clients = startClients(() => gw.url, 1);
  try {
    assert.ok(await waitFor(() => Promise.resolve(clients.acked.size >= 200), 30_000, 50));
    await proxy.set("down");
    assert.ok(
      await waitFor(() => Promise.resolve(clients.retryAfter > 0), 30_000, 100),
      `no 503 with Retry-After while the store was down: ${JSON.stringify([...clients.statuses])}`,
    );
    const ready = await fetch(`${gw.url}/ready`);
    assert.equal(ready.status, 503);
    assert.equal((await ready.json()).dependencies["lake store"].state, "down");
    await proxy.set("pass");
    const before = clients.acked.size;
    assert.ok(
      await waitFor(() => Promise.resolve(clients.acked.size > before + 200), 60_000, 100),
      `ingest did not resume: ${lastProblems(gw)}`,
    );
    await clients.stop();
    assert.ok(
      await waitFor(
        async () => (await readBronzeOf(engine, own.lake)).length >= clients.acked.size,
        60_000,
        300,
      ),
    );
    await assertCleanStop(gw);
    await assertBronzeExactlyOnce(lake, clients.acked, { exact: false });
  } finally {
    await clients.stop();
    await gw.stop("SIGKILL");
    await proxy.close();
    await own.close();
    engine.close();
    await lake.cleanup();
    await removeDir(root);
  }
});
