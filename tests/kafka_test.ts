/**
 * Integration against the real broker (`scripts/kafka.sh`): HTTP → Kafka → bronze, a Kafka topic →
 * bronze, dead letters on the DLQ topic, and SIGKILL of the consuming gateway mid-stream.
 * Each test uses its own topics and consumer group. The broker must be reachable: these tests
 * fail, never skip, without it.
 */
import assert from "node:assert/strict";
import { recordEventId } from "../shared/ids.ts";
import {
  assertCleanStop,
  clientEvent,
  type GatewayProcess,
  postEvents,
  startGateway,
  waitFor,
} from "./gateway_process.ts";
import { produce, readTopic, setup, teardown } from "./kafka_helpers.ts";
import { bronzeNextOffset, readBronze } from "./lake_helpers.ts";

Deno.test("kafka gateway: HTTP events go through the events topic into bronze; invalid ones to the DLQ topic", async () => {
  const s = await setup("http");
  const gw = await startGateway(s.env);
  try {
    const events = Array.from({ length: 300 }, (_, i) => clientEvent(i));
    const bad = [{ type: "login", user_id: "", occurred_at: "yesterday" }, {
      type: "teleport",
      user_id: "u",
      occurred_at: new Date().toISOString(),
    }];
    const res = await postEvents(gw.url, [...events, ...bad]);
    assert.equal(res.status, 202);
    assert.equal(res.body.accepted, 300);

    assert.ok(
      await waitFor(
        async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= 300,
        60_000,
      ),
    );
    const rows = await readBronze(s.engine, s.env.LAKE_DIR!);
    assert.equal(rows.length, 300);
    assert.deepEqual(new Set(rows.map((r) => r.event_id)), new Set(events.map((e) => e.event_id)));
    assert.ok(rows.every((r) => r.log_topic === s.events));
    assert.ok(
      new Set(rows.map((r) => r.log_partition)).size > 1,
      "keyed by user: more than one partition used",
    );

    const dlq = await readTopic(s.dlq, 2);
    assert.equal(dlq.length, 2);
    const byIndex = new Map(dlq.map((m) => [Number(m.headers["dlq.index"]), m]));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(byIndex.get(300)!.value)), bad[0]);
    assert.equal(byIndex.get(300)!.headers["dlq.source"], "http");
    assert.ok(byIndex.get(300)!.headers["dlq.request_id"]);
    const reasons = JSON.parse(byIndex.get(301)!.headers["dlq.reasons"]!);
    assert.equal(reasons[0].code, "unknown_type");

    // Log pipelines parse every line: no raw warnings (kafkajs' negative timers), and no warning
    // from kafkajs on a healthy start (its partitioner notice).
    assert.deepEqual(gw.logs.filter((l) => "raw" in l), []);
    const kafkajsWarnings = gw.logs.filter((l) => l.component === "kafkajs" && l.level !== "info");
    assert.deepEqual(kafkajsWarnings, []);
  } finally {
    await assertCleanStop(gw);
    await teardown(s);
  }
});

Deno.test("kafka gateway: a consumed topic reaches bronze; bad records reach the DLQ with bytes and position", async () => {
  const s = await setup("topic", 1);
  const encoder = new TextEncoder();
  const good = Array.from({ length: 200 }, (_, i) => {
    const e = clientEvent(i);
    if (i === 7) delete e.event_id; // gets a stable id from its position
    return JSON.stringify(e);
  });
  const notJson = "this is not json";
  const notUtf8 = new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]);
  const wrongShape = JSON.stringify({
    type: "purchase",
    user_id: "u",
    occurred_at: new Date().toISOString(),
    payload: { amount: -1 },
  });
  await produce(
    s.events,
    [...good.slice(0, 100), notJson, notUtf8, wrongShape, ...good.slice(100)].map((v) =>
      typeof v === "string" ? encoder.encode(v) : v
    ),
  );
  const gw = await startGateway(s.env);
  try {
    assert.ok(
      await waitFor(
        async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= 200,
        60_000,
      ),
    );
    const rows = await readBronze(s.engine, s.env.LAKE_DIR!);
    assert.equal(rows.length, 200);
    const seventh = rows.find((r) => r.log_offset === 7)!;
    assert.equal(seventh.event_id, recordEventId(s.events, 0, 7));

    const dlq = await readTopic(s.dlq, 3);
    assert.equal(dlq.length, 3);
    dlq.sort((a, b) => Number(a.headers["dlq.offset"]) - Number(b.headers["dlq.offset"]));
    assert.deepEqual(dlq.map((m) => m.headers["dlq.offset"]), ["100", "101", "102"]);
    assert.ok(
      dlq.every((m) => m.headers["dlq.topic"] === s.events && m.headers["dlq.partition"] === "0"),
    );
    assert.deepEqual(dlq[0]!.value, encoder.encode(notJson));
    assert.deepEqual(dlq[1]!.value, notUtf8);
    assert.deepEqual(dlq[2]!.value, encoder.encode(wrongShape));
    assert.match(dlq[1]!.headers["dlq.reasons"]!, /UTF-8/);
    assert.match(dlq[2]!.headers["dlq.reasons"]!, /payload\.amount/);
  } finally {
    await assertCleanStop(gw);
    await teardown(s);
  }
});

Deno.test("kafka gateway: SIGKILL mid-stream and restart leaves every produced event in bronze exactly once", async () => {
  const s = await setup("crash");
  const total = 60_000;
  const events = Array.from({ length: total }, (_, i) => JSON.stringify(clientEvent(i)));
  await produce(s.events, events);
  const env = { ...s.env, LAKE_FLUSH_ROWS: "500", LAKE_FLUSH_INTERVAL_MS: "300" };
  const count = async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length;
  // While the restarted gateway catches up it deletes the files of the batch the kill left
  // half-written: a scan listing one of them may fail. Polling goes on; the final count does not.
  const catchingUp = () => count().catch(() => -1);
  // The bronze log's txn versions are cheap to poll; reading the Parquet back is not.
  const progress = async () => {
    let sum = 0;
    for (let p = 0; p < 3; p++) {
      sum += await bronzeNextOffset(s.engine, s.env.LAKE_DIR!, s.events, p);
    }
    return sum;
  };
  let gw: GatewayProcess | undefined;
  try {
    let seen = 0;
    for (let round = 0; round < 3; round++) {
      gw = await startGateway(env);
      // Kill it once it has made some progress but not finished.
      const progressed = await waitFor(async () => (await progress()) > seen + 2000, 60_000, 20);
      await gw.stop("SIGKILL");
      gw = undefined;
      assert.ok(progressed, `round ${round}: no progress past offset sum ${seen} within 60 s`);
      seen = await progress();
    }
    assert.ok(seen < total, `the crash rounds should not have finished the topic (${seen})`);
    gw = await startGateway(env);
    const finished = await waitFor(async () => (await catchingUp()) >= total, 120_000, 500);
    const code = await gw.stop("SIGTERM");
    gw = undefined;
    assert.ok(finished, `bronze did not catch up with the topic (${await count()} of ${total})`);
    assert.equal(code, 0);

    const rows = await readBronze(s.engine, s.env.LAKE_DIR!);
    assert.equal(rows.length, total);
    const positions = new Set(rows.map((r) => `${r.log_partition}/${r.log_offset}`));
    assert.equal(positions.size, total, "a Kafka offset is in bronze twice");
    assert.equal(new Set(rows.map((r) => r.event_id)).size, total);
  } finally {
    await gw?.stop("SIGKILL");
    await teardown(s);
  }
});

Deno.test("kafka gateway: a group commit over the broker's 1 MiB message limit is split, not refused", async () => {
  const s = await setup("bigcommit");
  const gw = await startGateway(s.env);
  try {
    // ~3 MB in one request: one produce request would exceed message.max.bytes per partition.
    const events = Array.from(
      { length: 8000 },
      (_, i) =>
        clientEvent(i, { payload: { page: `/p/${"x".repeat(200)}/${i}` }, type: "page_view" }),
    );
    const res = await postEvents(gw.url, events);
    assert.equal(res.status, 202, JSON.stringify(res.body).slice(0, 300));
    assert.equal(res.body.accepted, 8000);
    assert.ok(
      await waitFor(
        async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= 8000,
        60_000,
      ),
    );
    assert.equal(
      new Set((await readBronze(s.engine, s.env.LAKE_DIR!)).map((r) => r.event_id)).size,
      8000,
    );
  } finally {
    await assertCleanStop(gw);
    await teardown(s);
  }
});
