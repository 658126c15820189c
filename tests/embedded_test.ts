/**
 * Integration: the real gateway process in embedded mode (no Kafka): HTTP → WAL → bronze Parquet,
 * graceful shutdown, and SIGKILL in the middle of ingest.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { LakeEngine } from "../lake/engine/engine.ts";
import {
  assertCleanStop,
  clientEvent,
  postEvents,
  startGateway,
  waitFor,
} from "./gateway_process.ts";
import { readBronze } from "./lake_helpers.ts";

async function dirs() {
  const root = await Deno.makeTempDir({ prefix: "embedded_it_" });
  return {
    root,
    env: {
      LAKE_DIR: join(root, "lake"),
      WAL_DIR: join(root, "wal"),
      DEAD_LETTER_DIR: join(root, "dlq"),
    },
  };
}

Deno.test("embedded gateway: accepted events reach bronze within the flush interval", async () => {
  const { root, env } = await dirs();
  const engine = new LakeEngine();
  const gw = await startGateway({ ...env, LAKE_FLUSH_INTERVAL_MS: "500" });
  try {
    const events = Array.from({ length: 120 }, (_, i) => clientEvent(i));
    const bad = {
      type: "purchase",
      user_id: "u",
      occurred_at: new Date().toISOString(),
      payload: { amount: "lots" },
    };
    const res = await postEvents(gw.url, [...events, bad]);
    assert.equal(res.status, 202);
    assert.equal(res.body.accepted, 120);
    assert.equal((res.body.rejected as unknown[]).length, 1);

    const arrived = await waitFor(
      async () => (await readBronze(engine, env.LAKE_DIR)).length >= 120,
      10_000,
    );
    assert.ok(arrived, "events did not reach bronze in 10 s");
    const rows = await readBronze(engine, env.LAKE_DIR);
    assert.deepEqual(new Set(rows.map((r) => r.event_id)), new Set(events.map((e) => e.event_id)));
    assert.deepEqual(new Set(rows.map((r) => r.type)), new Set(["purchase", "login", "page_view"]));

    const dlq = await Deno.readTextFile(
      join(
        env.DEAD_LETTER_DIR,
        `dt=${new Date().toISOString().slice(0, 10)}`,
        "dead_letters.ndjson",
      ),
    );
    const letter = JSON.parse(dlq.trim().split("\n")[0]!);
    assert.equal(letter.index, 120);
    assert.equal(letter.reasons[0].path, "payload.amount");
    assert.deepEqual(JSON.parse(letter.raw), bad);
  } finally {
    await assertCleanStop(gw);
    engine.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("embedded gateway: SIGTERM flushes every acknowledged event to bronze", async () => {
  const { root, env } = await dirs();
  const engine = new LakeEngine();
  try {
    // A flush interval far longer than the test: only the shutdown can write the lake.
    const gw = await startGateway({ ...env, LAKE_FLUSH_INTERVAL_MS: "600000" });
    const events = Array.from({ length: 500 }, (_, i) => clientEvent(i));
    const res = await postEvents(gw.url, events);
    assert.equal(res.status, 202);
    assert.equal((await readBronze(engine, env.LAKE_DIR)).length, 0);
    await assertCleanStop(gw);
    const rows = await readBronze(engine, env.LAKE_DIR);
    assert.equal(rows.length, 500);
    assert.deepEqual(new Set(rows.map((r) => r.event_id)), new Set(events.map((e) => e.event_id)));
  } finally {
    engine.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("embedded gateway: SIGKILL during ingest loses no acknowledged event and duplicates none", async () => {
  const { root, env } = await dirs();
  const engine = new LakeEngine();
  const acked = new Set<string>();
  const runEnv = { ...env, LAKE_FLUSH_INTERVAL_MS: "200", LAKE_FLUSH_ROWS: "300" };
  let sent = 0;
  try {
    for (let round = 0; round < 3; round++) {
      const gw = await startGateway(runEnv);
      let killed = false;
      const clients = Array.from({ length: 4 }, async () => {
        while (!killed) {
          const batch = Array.from({ length: 25 }, (_, i) => clientEvent(sent + i));
          sent += batch.length;
          try {
            const res = await postEvents(gw.url, batch);
            if (res.status === 202) { for (const e of batch) acked.add(e.event_id as string); }
          } catch {
            // The connection died with the process: these events were never acknowledged.
          }
        }
      });
      await new Promise((r) => setTimeout(r, 700 + round * 300));
      await gw.stop("SIGKILL");
      killed = true;
      await Promise.all(clients);
    }
    // A last, clean run replays what the WAL holds and the lake lacks.
    const gw = await startGateway(runEnv);
    await assertCleanStop(gw);

    const rows = await readBronze(engine, env.LAKE_DIR);
    const ids = rows.map((r) => r.event_id);
    assert.ok(acked.size > 0, "no request was acknowledged");
    const missing = [...acked].filter((id) => !ids.includes(id));
    assert.deepEqual(missing, [], `${missing.length} acknowledged events are not in bronze`);
    assert.equal(new Set(ids).size, ids.length, "an event is in bronze twice");
    assert.equal(
      new Set(rows.map((r) => r.log_offset)).size,
      rows.length,
      "a log offset is in bronze twice",
    );
  } finally {
    engine.close();
    await Deno.remove(root, { recursive: true });
  }
});
