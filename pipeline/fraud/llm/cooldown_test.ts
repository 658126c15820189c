// Tests of the LLM judge's per-user cooldown on an injected clock.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { UserCooldown } from "./cooldown.ts";

Deno.test("UserCooldown: the same key reuses the verdict, another key is refused until it ends", () => {
  let now = 0;
  const cooldown = new UserCooldown<string>({ cooldownMs: 1000, now: () => now });
  assert.equal(cooldown.check("u", "a"), undefined);
  cooldown.remember("u", "a", "verdict");
  assert.deepEqual(cooldown.check("u", "a"), { reuse: "verdict" });
  assert.deepEqual(cooldown.check("u", "b"), {
    refuse: "cooldown until 1970-01-01T00:00:01.000Z",
  });
  assert.equal(cooldown.check("other", "b"), undefined);
  now = 1000;
  assert.equal(cooldown.check("u", "b"), undefined, "over");
});

Deno.test("UserCooldown: a call in progress dedupes by key until it settles", async () => {
  const cooldown = new UserCooldown<string>({ cooldownMs: 1000, now: () => 0 });
  let finish!: (v: string) => void;
  const call = new Promise<string>((r) => finish = r);
  cooldown.track("u", "a", call);
  assert.deepEqual(cooldown.check("u", "a"), { reuse: call });
  assert.deepEqual(cooldown.check("u", undefined), {
    refuse: "cooldown: a verdict for this user is in progress",
  });
  finish("done");
  await call;
  assert.equal(cooldown.check("u", "b"), undefined, "nothing remembered without remember()");
});

Deno.test("UserCooldown keeps at most maxUsers users, dropping the oldest", () => {
  const cooldown = new UserCooldown<number>({ cooldownMs: 1000, now: () => 0, maxUsers: 2 });
  for (const user of ["a", "b", "c"]) cooldown.remember(user, "k", 1);
  assert.equal(cooldown.check("a", "x"), undefined);
  assert.ok(cooldown.check("c", "x") !== undefined);
});
