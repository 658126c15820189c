/**
 * Runs the Upstash REST bridge (`tests/fixtures/upstash_bridge.ts`) in front of a local Redis, for
 * trying the Redis-backed fraud windows without Upstash or Docker:
 *
 *   UPSTASH_REDIS_REST_TOKEN=dev deno task redis:bridge     # listens on 127.0.0.1:8079
 *   UPSTASH_REDIS_REST_URL=http://127.0.0.1:8079 UPSTASH_REDIS_REST_TOKEN=dev deno task dev
 *
 * Development only: the real service (or serverless-redis-http in compose.yaml) takes its place
 * in production.
 *
 * @module
 */
import { startUpstashBridge } from "../tests/fixtures/upstash_bridge.ts";

const token = Deno.env.get("UPSTASH_REDIS_REST_TOKEN");
if (!token) {
  console.error("Set UPSTASH_REDIS_REST_TOKEN to the token clients must send.");
  Deno.exit(2);
}
const bridge = await startUpstashBridge({
  token,
  port: Number(Deno.env.get("BRIDGE_PORT") ?? "8079"),
  redisHost: Deno.env.get("REDIS_HOST") ?? "127.0.0.1",
  redisPort: Number(Deno.env.get("REDIS_PORT") ?? "6379"),
});
console.log(`Upstash REST bridge on ${bridge.url} → Redis`);
const stop = async () => {
  await bridge.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
