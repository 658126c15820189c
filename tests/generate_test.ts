/**
 * Integration: the traffic generator run the way a user runs it (`deno run scripts/generate.ts`)
 * against the real gateway process, over HTTP in embedded mode and through the events topic in Kafka
 * mode (the seeds' flow). The bot-attack scenario is delivered in full and the gateway's rules raise
 * the seeds' `[SUSPICIOUS] Fraud Detected` alert for the bot.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SUSPICIOUS } from "../pipeline/fraud/sinks.ts";
import type { Summary } from "../scripts/generate.ts";
import { type GatewayProcess, startGateway, waitFor } from "./gateway_process.ts";
import { BROKERS, readTopic, setup, teardown } from "./kafka_helpers.ts";

const GENERATE = fileURLToPath(new URL("../scripts/generate.ts", import.meta.url));

/** Runs the generator as a user would, with the permissions of `deno task generate`. */
async function generate(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", GENERATE, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const alertLines = (gw: GatewayProcess) =>
  gw.logs.filter((l) => typeof l.msg === "string" && l.msg.startsWith(SUSPICIOUS));

Deno.test("generate: a bot attack against the embedded gateway is all accepted and raises the alert", async () => {
  const root = await Deno.makeTempDir({ prefix: "generate_it_" });
  const gw = await startGateway({
    LAKE_DIR: join(root, "lake"),
    WAL_DIR: join(root, "wal"),
    DEAD_LETTER_DIR: join(root, "dlq"),
    LAKE_FLUSH_INTERVAL_MS: "300",
  });
  try {
    const run = await generate([
      "--scenario",
      "bot-attack",
      "--target",
      gw.url,
      "--events",
      "400",
      "--rate",
      "800",
      "--batch",
      "20",
      "--concurrency",
      "4",
      "--json",
    ]);
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout) as Summary;
    assert.equal(summary.scenario, "bot-attack");
    assert.equal(summary.sent, 400);
    assert.equal(summary.accepted, 400);
    assert.equal(summary.rejected, 0);
    assert.equal(summary.failed, 0);
    assert.equal(summary.lost_batches, 0);
    assert.deepEqual(summary.errors, {});
    assert.ok(summary.rate.achieved > 0 && summary.latency_ms.p99 >= summary.latency_ms.p50);
    // Not a terminal: progress comes as plain lines, never a redrawn bar.
    assert.match(run.stderr, /^bot-attack 100% {2}400 sent/m);
    assert.doesNotMatch(run.stderr, /\r/);

    const bot = summary.attack.bot_user as string;
    assert.ok(
      await waitFor(() => Promise.resolve(alertLines(gw).some((l) => l.user_id === bot)), 30_000),
      `no "${SUSPICIOUS}" line for ${bot}: ${JSON.stringify(gw.logs.slice(-5))}`,
    );
    const [line, ...more] = alertLines(gw);
    assert.equal(line!.msg, `${SUSPICIOUS}: user "${bot}" score 0.9`);
    assert.deepEqual(line!.rules, ["login_burst_then_purchase"]);
    // One alert for the bot (cooldown), none for the ordinary traffic around it.
    assert.deepEqual(more, []);
  } finally {
    await gw.stop("SIGKILL");
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("generate: a bot attack produced to the events topic reaches the Kafka-mode gateway's rules", async () => {
  const s = await setup("generate");
  const gw = await startGateway({ ...s.env, LAKE_FLUSH_INTERVAL_MS: "300" });
  try {
    const run = await generate([
      "--scenario",
      "bot-attack",
      "--target",
      `kafka://${BROKERS}/${s.events}`,
      "--events",
      "200",
      "--rate",
      "1000",
      "--json",
      "--quiet",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, "");
    const summary = JSON.parse(run.stdout) as Summary;
    assert.equal(summary.accepted, 200);
    assert.equal(summary.failed, 0);
    const records = await readTopic(s.events, 200);
    const events = records.map((r) => JSON.parse(new TextDecoder().decode(r.value)));
    assert.equal(new Set(events.map((e) => e.event_id)).size, 200);

    const bot = summary.attack.bot_user as string;
    assert.ok(
      await waitFor(() => Promise.resolve(alertLines(gw).some((l) => l.user_id === bot)), 60_000),
      `no "${SUSPICIOUS}" line for ${bot}: ${JSON.stringify(gw.logs.slice(-5))}`,
    );
    assert.deepEqual(alertLines(gw)[0]!.rules, ["login_burst_then_purchase"]);
  } finally {
    await gw.stop("SIGKILL");
    await teardown(s);
  }
});

Deno.test("generate: exits 1 and reports the loss when batches cannot be delivered", async () => {
  let posts = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (req) => {
    if (new URL(req.url).pathname === "/health") return Response.json({ status: "ok" });
    posts++;
    return Response.json({ error: { message: "The durable log is down" } }, { status: 500 });
  });
  try {
    const run = await generate([
      "--target",
      `http://127.0.0.1:${server.addr.port}`,
      "--events",
      "30",
      "--rate",
      "1000",
      "--batch",
      "10",
      "--retries",
      "1",
      "--quiet",
    ]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.equal(run.stderr, "");
    assert.match(run.stdout, /^failed {5}30 events \(3 batches lost\)$/m);
    assert.match(run.stdout, /^error {6}6 x HTTP 500: The durable log is down$/m);
    assert.equal(posts, 6);
  } finally {
    await server.shutdown();
  }
});

Deno.test("generate: exits 2 with a clear message for bad arguments, 1 for an unreachable target", async () => {
  const bad = await generate(["--scenario", "bot-attack", "--rate", "-5"]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, "");
  assert.match(bad.stderr, /^generate: Invalid --rate "-5": expected a number greater than 0/);

  // A port nothing listens on: bound, then released.
  const probe = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const down = await generate(["--target", `http://127.0.0.1:${port}`, "--events", "1"]);
  assert.equal(down.code, 1);
  assert.match(
    down.stderr,
    /^generate: Cannot reach the gateway at http:\/\/127\.0\.0\.1:\d+\/health/,
  );
});
