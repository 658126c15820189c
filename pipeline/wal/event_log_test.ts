// Tests of the embedded event log: backpressure and the stored format.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { Wal } from "./wal.ts";
import { WalEventLog } from "./event_log.ts";
import { decoder, event, withDir } from "./testing.ts";

Deno.test("WalEventLog.overloaded() reports when lag exceeds maxLagEvents", async () => {
  await withDir(async (dir) => {
    const wal = await Wal.open(dir);
    let committed = 0;
    const log = new WalEventLog(wal, () => committed, { maxLagEvents: 2 });
    try {
      assert.equal(log.overloaded(), undefined);
      await log.append([event(0), event(1)]);
      assert.equal(log.overloaded(), undefined, "lag 2 is at the limit, not beyond");
      await log.append([event(2)]);
      const why = log.overloaded();
      assert.ok(why !== undefined);
      assert.match(why, /3 events behind/);
      committed = 1;
      assert.equal(log.overloaded(), undefined);

      // The log stores the envelope as clients send it.
      const stored = JSON.parse(decoder.decode((await wal.read(2, 1))[0]!.value));
      assert.equal(stored.type, "login");
      assert.equal(stored.event_type, undefined);
      assert.equal(stored.event_id, event(2).event_id);
      assert.deepEqual(stored.payload, { i: 2 });
    } finally {
      await log.close();
    }
  });
});
