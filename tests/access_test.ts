/**
 * Integration: access control on the real gateway process — API keys, signed bodies, private
 * query routes, per-key rate limits — and no secret in any log line.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { signBody } from "../routes/auth/signature.ts";
import { assertCleanStop, clientEvent, startGateway } from "./gateway_process.ts";
import { removeDir } from "./kafka_helpers.ts";

const SECRET = "s3cret-ingest-key-0123456789";
const OTHER = "another-key-secret-abcdefghij";

Deno.test("access: API keys, HMAC, private queries and rate limits on the running gateway", async () => {
  const root = await Deno.makeTempDir({ prefix: "access_it_" });
  const gw = await startGateway({
    LAKE_DIR: join(root, "lake"),
    WAL_DIR: join(root, "wal"),
    DEAD_LETTER_DIR: join(root, "dlq"),
    API_KEYS: `app:${SECRET},ops:${OTHER}`,
    API_HMAC: "required",
    QUERY_AUTH: "private",
    RATE_LIMIT_PER_KEY: "5",
    RATE_LIMIT_WINDOW_S: "60",
  });
  const post = async (headers: Record<string, string>, body: string) => {
    const res = await fetch(`${gw.url}/events`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
    return { status: res.status, body: await res.json(), headers: res.headers };
  };
  const signed = async (secret: string, body: string, t = Math.floor(Date.now() / 1000)) => ({
    authorization: `Bearer ${secret}`,
    "x-signature": await signBody(secret, t, body),
  });
  try {
    const body = JSON.stringify([clientEvent(1), clientEvent(2)]);
    assert.equal((await post({}, body)).status, 401, "no key");
    assert.equal(
      (await post({ authorization: "Bearer wrong-key-wrong-key-1234" }, body)).status,
      401,
    );
    const unsigned = await post({ authorization: `Bearer ${SECRET}` }, body);
    assert.equal(unsigned.status, 401, "HMAC required: a key alone is not enough");
    const stale = await post(
      await signed(SECRET, body, Math.floor(Date.now() / 1000) - 3600),
      body,
    );
    assert.equal(stale.status, 401, "a signature an hour old");
    const tampered = await post(await signed(SECRET, body), body.replace("user-1", "user-9"));
    assert.equal(tampered.status, 401, "a body changed after signing");
    const good = await post(await signed(SECRET, body), body);
    assert.equal(good.status, 202, JSON.stringify(good.body));
    assert.equal(good.body.accepted, 2);

    // Query routes are private: a key is needed, and the rate limit counts them too.
    assert.equal((await fetch(`${gw.url}/stats`)).status, 401);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${gw.url}/stats`, { headers: { "x-api-key": OTHER } });
      statuses.push(res.status);
      if (res.status === 429) assert.ok(Number(res.headers.get("retry-after")) >= 1);
      await res.body?.cancel();
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429], "the 6th request in the window");
    // One key's limit does not touch another's.
    assert.equal((await post(await signed(SECRET, body), body)).status, 202);
    // Health stays public.
    assert.equal((await fetch(`${gw.url}/health`)).status, 200);
  } finally {
    await assertCleanStop(gw);
    await removeDir(root);
  }
  const logs = JSON.stringify(gw.logs);
  assert.ok(!logs.includes(SECRET) && !logs.includes(OTHER), "a secret reached the logs");
  assert.ok(logs.includes("wrong-key") === false, "a presented credential reached the logs");
});
