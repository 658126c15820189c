/**
 * Integration: Deno's built-in OpenTelemetry, switched on by configuration alone
 * (`OTEL_DENO=true`), exports the gateway's HTTP server spans over OTLP.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertCleanStop,
  clientEvent,
  postEvents,
  startGateway,
  waitFor,
} from "./gateway_process.ts";
import { removeDir } from "./kafka_helpers.ts";

Deno.test("gateway: OTEL_DENO=true exports request traces to the OTLP endpoint", async () => {
  const received: { path: string; bytes: number }[] = [];
  const collector = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    received.push({ path: new URL(req.url).pathname, bytes: (await req.arrayBuffer()).byteLength });
    return new Response(null, { status: 200 });
  });
  const root = await Deno.makeTempDir({ prefix: "otel_it_" });
  const gw = await startGateway({
    LAKE_DIR: join(root, "lake"),
    WAL_DIR: join(root, "wal"),
    DEAD_LETTER_DIR: join(root, "dlq"),
    OTEL_DENO: "true",
    OTEL_SERVICE_NAME: "streamgate-test",
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.addr.port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
  });
  try {
    assert.equal((await postEvents(gw.url, [clientEvent(1)])).status, 202);
    assert.ok(
      await waitFor(
        () => Promise.resolve(received.some((r) => r.path === "/v1/traces" && r.bytes > 0)),
        30_000,
      ),
      `no trace export; collector saw ${JSON.stringify(received)}`,
    );
  } finally {
    await assertCleanStop(gw);
    await collector.shutdown();
    await removeDir(root);
  }
});
