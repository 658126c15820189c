/**
 * The seeds' bot-attack flow end to end, on the real broker and the real Redis: events produced to
 * Kafka → the gateway's consumer → windows in Redis through @upstash/redis (via the REST bridge) →
 * rules → the LLM (a fake Ollama speaking the real API) → an alert on the alerts topic, in the lake
 * and in the log as `[SUSPICIOUS] Fraud Detected`. Normal traffic next to it raises nothing, and
 * Ollama or Redis failures degrade to rule-only decisions.
 */
import assert from "node:assert/strict";
import { DEFAULT_REPLY, startFakeOllama } from "./fixtures/fake_ollama.ts";
import { startUpstashBridge } from "./fixtures/upstash_bridge.ts";
import {
  alertLines,
  botAttack,
  deleteRedisKeys,
  normalSession,
  randomIp,
  SUSPICIOUS,
} from "./fraud_helpers.ts";
import { postEvents, startGateway, waitFor } from "./gateway_process.ts";
import { produce, readTopic, setup, teardown } from "./kafka_helpers.ts";
import { readAlerts, readBronze } from "./lake_helpers.ts";

Deno.test("fraud e2e: a bot attack through Kafka raises one alert with the rule and LLM scores; normal traffic none", async () => {
  const s = await setup("fraud");
  const token = crypto.randomUUID();
  const bridge = await startUpstashBridge({ token });
  const ollama = await startFakeOllama();
  const run = crypto.randomUUID().slice(0, 8);
  const bot = `bot-${run}`, bot2 = `bot2-${run}`;
  const normal = Array.from({ length: 5 }, (_, i) => `shopper-${i}-${run}`);
  const ips = [randomIp(), randomIp(), randomIp()];
  const gw = await startGateway({
    ...s.env,
    UPSTASH_REDIS_REST_URL: bridge.url,
    UPSTASH_REDIS_REST_TOKEN: token,
    OLLAMA_HOST: ollama.url,
    OLLAMA_MODEL: "llama3.2:1b",
    OLLAMA_TIMEOUT_MS: "1000",
    LAKE_FLUSH_INTERVAL_MS: "300",
  });
  let bridgeOpen = true;
  try {
    const now = Date.now();
    const attack = botAttack(bot, now, ips[0]!);
    const traffic = normal.flatMap((u, i) =>
      normalSession(u, now - 50 * 60_000 + i * 1000, ips[1]!)
    );
    // Produced straight to the topic, as the seeds' traffic generator does; keyed by user so one
    // user's events stay in order.
    const all = [...traffic, ...attack];
    await produce(s.events, all.map((e) => JSON.stringify(e)), (i) => all[i]!.user_id as string);

    assert.ok(
      await waitFor(() => Promise.resolve(alertLines(gw, bot).length > 0), 60_000),
      `no "${SUSPICIOUS}" line for ${bot}: ${JSON.stringify(gw.logs.slice(-5))}`,
    );
    // Everything is in bronze, so every event has been scored: still one alert, none for shoppers.
    assert.ok(
      await waitFor(
        async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= all.length,
        60_000,
      ),
    );
    assert.equal(alertLines(gw, bot).length, 1);
    for (const u of normal) assert.deepEqual(alertLines(gw, u), [], `alert for ${u}`);
    // The LLM's 0.85 is below the rules' 0.9: the rules are the floor of the published score.
    const line = alertLines(gw, bot)[0]!;
    assert.equal(line.msg, `${SUSPICIOUS}: user "${bot}" score 0.9`);
    assert.equal(line.fraud_score, 0.9);
    assert.equal(line.llm_score, DEFAULT_REPLY.fraud_score);

    // The alerts topic has the full alert.
    const [msg] = await readTopic(s.alerts, 1);
    const alert = JSON.parse(new TextDecoder().decode(msg!.value));
    assert.equal(alert.user_id, bot);
    assert.equal(msg!.headers["alert.id"], alert.alert_id);
    assert.equal(alert.trigger_type, "purchase");
    assert.deepEqual(alert.rules.map((r: { name: string }) => r.name), [
      "login_burst_then_purchase",
    ]);
    assert.equal(alert.rule_score, 0.9);
    assert.equal(alert.llm.status, "ok");
    assert.equal(alert.llm.fraud_score, DEFAULT_REPLY.fraud_score);
    assert.equal(alert.llm.rationale, DEFAULT_REPLY.rationale);
    assert.equal(alert.llm_score, DEFAULT_REPLY.fraud_score);
    assert.equal(alert.fraud_score, 0.9);
    assert.equal(alert.severity, "critical");
    assert.equal(alert.llm_disagrees, false);
    assert.deepEqual(alert.event_ids, attack.map((e) => e.event_id));
    assert.deepEqual(alert.window.types, { login: 15, purchase: 1 });

    // The LLM was asked once, about this user's window, as data.
    assert.equal(ollama.requests.length, 1);
    const req = ollama.requests[0]!;
    assert.equal(req.model, "llama3.2:1b");
    assert.equal((req.options as { temperature: number }).temperature, 0);
    const user = (req.messages as { role: string; content: string }[]).find((m) =>
      m.role === "user"
    )!;
    assert.ok(user.content.includes(bot));
    assert.equal(user.content.match(/"type":"login"/g)?.length, 15);

    // And the lake's alerts table has it once.
    assert.ok(
      await waitFor(async () => (await readAlerts(s.engine, s.env.LAKE_DIR!)).length > 0, 10_000),
    );
    const rows = await readAlerts(s.engine, s.env.LAKE_DIR!);
    assert.deepEqual(
      rows.map((r) => [r.user_id, r.llm_status, r.llm_score, r.fraud_score, r.llm_disagrees]),
      [[bot, "ok", 0.85, 0.9, false]],
    );

    // POST /score: the edge decision for the bot's next purchase, and for a shopper's.
    const score = async (event: Record<string, unknown>) => {
      const res = await fetch(`${gw.url}/score`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(event),
      });
      return { status: res.status, body: await res.json() };
    };
    const nextBuy = {
      type: "purchase",
      user_id: bot,
      occurred_at: new Date().toISOString(),
      payload: { amount: 10 },
    };
    const blocked = await score(nextBuy);
    assert.equal(blocked.status, 200);
    assert.equal(blocked.body.decision, "block");
    assert.deepEqual(blocked.body.rules.map((r: { name: string }) => r.name), [
      "login_burst_then_purchase",
    ]);
    const fine = await score({ ...nextBuy, user_id: normal[0] });
    assert.equal(fine.body.decision, "allow");
    const invalid = await score({ type: "purchase", user_id: bot, occurred_at: "soon" });
    assert.equal(invalid.status, 422);
    assert.equal(invalid.body.error.issues[0].path, "occurred_at");

    // Ollama failing: the next bot's alert goes out on the rules, saying why.
    ollama.setMode({ kind: "error", status: 500, message: "model crashed" });
    const res = await postEvents(gw.url, botAttack(bot2, Date.now(), ips[2]!));
    assert.equal(res.status, 202);
    assert.ok(await waitFor(() => Promise.resolve(alertLines(gw, bot2).length > 0), 60_000));
    const degraded = alertLines(gw, bot2)[0]!;
    assert.equal(degraded.fraud_score, 0.9);
    assert.equal((degraded.llm as { status: string }).status, "unavailable");
    assert.match((degraded.llm as { reason: string }).reason, /HTTP 500/);

    // Redis unreachable: /score still answers, on the rules that need no window, and says so.
    await bridge.close();
    bridgeOpen = false;
    const big = await score({ ...nextBuy, user_id: normal[1], payload: { amount: 5000 } });
    assert.equal(big.status, 200);
    assert.deepEqual(big.body.rules.map((r: { name: string }) => r.name), ["high_value_purchase"]);
    assert.match(big.body.degraded, /window store unavailable/);
  } finally {
    await gw.stop("SIGKILL");
    if (bridgeOpen) await bridge.close();
    await ollama.close();
    await teardown(s);
    await deleteRedisKeys([bot, bot2, ...normal], ips);
  }
});
