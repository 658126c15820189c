/**
 * Traffic for fraud tests: the seeds' bot attack, a normal shopper's session, and the alert log
 * lines a gateway process wrote.
 *
 * @module
 */
import { connectResp } from "./fixtures/upstash_bridge.ts";
import type { GatewayProcess } from "./gateway_process.ts";

export const SUSPICIOUS = "[SUSPICIOUS] Fraud Detected";

/** A random private IP, so per-IP windows of earlier runs (TTL 10 min) never count here. */
export const randomIp = () =>
  `10.${Array.from(crypto.getRandomValues(new Uint8Array(3))).join(".")}`;

/** The bot: 15 logins two seconds apart, then a purchase, all in the last minute. */
export function botAttack(user: string, endMs: number, ip: string): Record<string, unknown>[] {
  const at = (ms: number) => new Date(ms).toISOString();
  const logins = Array.from({ length: 15 }, (_, i) => ({
    event_id: crypto.randomUUID(),
    type: "login",
    user_id: user,
    occurred_at: at(endMs - 40_000 + i * 2000),
    payload: { ip, method: "password" },
  }));
  return [...logins, {
    event_id: crypto.randomUUID(),
    type: "purchase",
    user_id: user,
    occurred_at: at(endMs - 5000),
    payload: { amount: 249.99, currency: "USD", payment_method: "card" },
  }];
}

/** A normal session: a login, some browsing, one small purchase, a logout, minutes apart. */
export function normalSession(
  user: string,
  startMs: number,
  ip: string,
): Record<string, unknown>[] {
  const steps: [string, Record<string, unknown>][] = [
    ["login", { ip, country: "DE" }],
    ["page_view", { page: "/" }],
    ["add_to_cart", { product_id: "p-1", quantity: 1, price: 19.9 }],
    ["purchase", { amount: 19.9, currency: "EUR" }],
    ["logout", {}],
  ];
  return steps.map(([type, payload], i) => ({
    event_id: crypto.randomUUID(),
    type,
    user_id: user,
    occurred_at: new Date(startMs + i * 3 * 60_000).toISOString(),
    payload,
  }));
}

export const alertLines = (gw: GatewayProcess, user: string) =>
  gw.logs.filter((l) => typeof l.msg === "string" && l.msg.startsWith(SUSPICIOUS)).filter((l) =>
    l.user_id === user
  );

/** Deletes the window keys of these users and IPs from the local Redis (after a test). */
export async function deleteRedisKeys(users: string[], ips: string[]): Promise<void> {
  const conn = await connectResp();
  try {
    const patterns = [
      ...users.map((u) => `sg:u:${encodeURIComponent(u)}:*`),
      ...ips.map((ip) => `sg:ip:${encodeURIComponent(ip)}:*`),
    ];
    for (const pattern of patterns) {
      const [reply] = await conn.send([["KEYS", pattern]]);
      if (reply?.type === "array" && reply.value && reply.value.length > 0) {
        const keys = reply.value.flatMap((k) =>
          k.type === "bulk" && k.value !== null ? [k.value] : []
        );
        await conn.send([["DEL", ...keys]]);
      }
    }
  } finally {
    conn.close();
  }
}
