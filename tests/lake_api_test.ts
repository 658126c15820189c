/**
 * Integration: the real gateway process builds silver and gold on demand (the admin endpoint, as
 * the cron would) and answers the query API over what it ingested.
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

const TOKEN = "test-admin-token-0123456789";

Deno.test("gateway: admin job builds silver and gold; the query API answers over them", async () => {
  const root = await Deno.makeTempDir({ prefix: "lake_api_it_" });
  const env = {
    LAKE_DIR: join(root, "lake"),
    WAL_DIR: join(root, "wal"),
    DEAD_LETTER_DIR: join(root, "dlq"),
    LAKE_FLUSH_INTERVAL_MS: "200",
    ADMIN_TOKEN: TOKEN,
    JOBS_CRON: "off",
  };
  const gw = await startGateway(env);
  try {
    const user = `api-user-${crypto.randomUUID().slice(0, 8)}`;
    const events = Array.from({ length: 30 }, (_, i) => clientEvent(i, { user_id: user }));
    // The first five again, as a retrying client would send them: silver keeps one of each.
    const res = await postEvents(gw.url, [...events, ...events.slice(0, 5)]);
    assert.equal(res.status, 202);
    assert.equal(res.body.accepted, 35);

    const page = async (qs: string) => {
      const r = await fetch(`${gw.url}/events?${qs}`);
      assert.equal(r.status, 200);
      return await r.json() as { events: { event_id: string }[]; next_cursor: string | null };
    };
    assert.ok(
      await waitFor(
        async () => (await page(`user_id=${user}&limit=100`)).events.length === 35,
        10_000,
      ),
      "bronze did not show the 35 accepted events",
    );

    // Pages of 10 walk the 35 bronze rows once each.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const p = await page(`user_id=${user}&limit=10${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...p.events.map((e) => e.event_id));
      cursor = p.next_cursor;
    } while (cursor);
    assert.equal(seen.length, 35);

    const noAuth = await fetch(`${gw.url}/admin/jobs/all`, { method: "POST" });
    assert.equal(noAuth.status, 401);
    await noAuth.body?.cancel();
    const run = await fetch(`${gw.url}/admin/jobs/all`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const report = await run.json();
    assert.equal(run.status, 200, JSON.stringify(report));
    assert.equal(report.status, "ok");
    assert.equal(report.silver.duplicates, 5);

    const u = await fetch(`${gw.url}/users/${user}`);
    assert.equal(u.status, 200);
    const body = await u.json();
    assert.equal(body.features.length, 1, "one gold row for the user's one day");
    const f = body.features[0];
    assert.equal(f.events_total, 30);
    assert.equal(f.n_purchase, events.filter((e) => e.type === "purchase").length);
    assert.equal(f.n_login, events.filter((e) => e.type === "login").length);

    const again = await fetch(`${gw.url}/admin/jobs/all`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const second = await again.json();
    assert.equal(second.rows, 0, "a rerun with no new bronze does no work");

    const stats = await (await fetch(`${gw.url}/stats`)).json();
    assert.ok(stats.by_type.purchase >= 10);

    const hostile = await fetch(`${gw.url}/events?user_id=${encodeURIComponent("x' OR 1=1 --")}`);
    assert.ok([200, 400].includes(hostile.status));
    const h = await hostile.json();
    if (hostile.status === 200) assert.deepEqual(h.events, []);
  } finally {
    await assertCleanStop(gw);
    await Deno.remove(root, { recursive: true });
  }
});
