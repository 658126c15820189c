/**
 * Integration against the real broker: the gateway and worker roles as separate processes, and
 * SIGTERM in the middle of ingest losing nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertExactlyOnce, startClients } from "./clients.ts";
import {
  assertCleanStop,
  clientEvent,
  postEvents,
  startGateway,
  waitFor,
} from "./gateway_process.ts";
import { setup, teardown } from "./kafka_helpers.ts";
import { readBronze } from "./lake_helpers.ts";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("roles: a disk-less gateway produces, a worker writes the lake; each serves only its routes", async () => {
  const s = await setup("roles");
  const gatewayLake = join(s.root, "gateway-lake");
  const gateway = await startGateway({ ...s.env, ROLE: "gateway", LAKE_DIR: gatewayLake });
  const worker = await startGateway({ ...s.env, ROLE: "worker" });
  try {
    const events = Array.from({ length: 200 }, (_, i) => clientEvent(i));
    const res = await postEvents(gateway.url, events);
    assert.equal(res.status, 202);
    assert.equal(res.body.accepted, 200);
    assert.ok(
      await waitFor(
        async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= 200,
        60_000,
      ),
      "the worker did not write the gateway's events to bronze",
    );
    const rows = await readBronze(s.engine, s.env.LAKE_DIR!);
    assert.deepEqual(new Set(rows.map((r) => r.event_id)), new Set(events.map((e) => e.event_id)));
    assert.equal(rows.length, 200);

    assert.equal(await exists(gatewayLake), false, "the gateway role touched a lake directory");
    const status = async (url: string, init?: RequestInit) => {
      const r = await fetch(url, init);
      await r.body?.cancel();
      return r.status;
    };
    // The gateway has no lake to query; the worker takes no events over HTTP.
    assert.equal(await status(`${gateway.url}/events`), 404);
    assert.equal(await status(`${gateway.url}/stats`), 404);
    assert.equal(await status(`${worker.url}/events`, { method: "POST", body: "{}" }), 404);
    assert.equal(await status(`${worker.url}/stats`), 200);

    const ready = await (await fetch(`${worker.url}/ready`)).json();
    assert.equal(ready.dependencies["lake disk"].state, "ok");
    assert.equal(ready.dependencies["kafka consumer"].state, "ok");
    const gwReady = await (await fetch(`${gateway.url}/ready`)).json();
    assert.equal(gwReady.dependencies["lake disk"], undefined);
    assert.equal(gwReady.dependencies["kafka consumer"], undefined, "a gateway consumes nothing");
    assert.equal(gwReady.dependencies.ingest.state, "ok");
  } finally {
    await assertCleanStop(gateway);
    await assertCleanStop(worker);
    await teardown(s);
  }
});

Deno.test("kafka gateway: SIGTERM during ingest exits 0 and loses no acknowledged event", async () => {
  const s = await setup("sigterm");
  let gw = await startGateway(s.env);
  const clients = startClients(() => gw.url, 4, 50);
  try {
    await waitFor(() => Promise.resolve(clients.acked.size >= 1000), 20_000, 50);
    await assertCleanStop(gw, "graceful shutdown must exit 0");
    await clients.stop();
    const acked = clients.acked;
    assert.ok(acked.size >= 1000, `only ${acked.size} events acknowledged`);

    // What the first process had not consumed yet is in Kafka: the next one loads it.
    gw = await startGateway(s.env);
    assert.ok(
      await waitFor(
        async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= acked.size,
        60_000,
      ),
      "acknowledged events did not all reach bronze",
    );
    assertExactlyOnce(await readBronze(s.engine, s.env.LAKE_DIR!), acked);
  } finally {
    await clients.stop();
    await assertCleanStop(gw);
    await teardown(s);
  }
});
