// Tests of the embedded log's input: delivery to the handler, commits, drain.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import type { LogRecord } from "../durable_log.ts";
import { WAL_TOPIC } from "./wal.ts";
import { WalInput } from "./input.ts";
import { bytes, name, RECORDS, segmentFiles, texts, withDir, withWal } from "./testing.ts";

Deno.test("WalInput delivers appended records to its handler and drain() resolves", async () => {
  await withDir((dir) =>
    withWal(dir, async (wal) => {
      await wal.append([bytes("before-0"), bytes("before-1")]);
      const received: LogRecord[] = [];
      const errors: unknown[] = [];
      const input = new WalInput(wal, 1, { batchRecords: 2, onError: (e) => errors.push(e) });
      try {
        await input.start({
          handle(records) {
            received.push(...records);
            return Promise.resolve();
          },
        });
        for (let i = 0; i < 5; i++) await wal.append([bytes(`r${i}`)]);
        assert.equal(await input.drain(5_000), true);
        assert.deepEqual(received.map((r) => r.offset), [1, 2, 3, 4, 5, 6]);
        assert.deepEqual(texts(received), ["before-1", "r0", "r1", "r2", "r3", "r4"]);
        assert.deepEqual(errors, []);

        await input.commit(WAL_TOPIC, 0, 7);
        assert.equal(input.committed, 7);
        await input.commit(WAL_TOPIC, 0, 3); // never moves back
        assert.equal(input.committed, 7);
      } finally {
        await input.close();
      }
    })
  );
});

Deno.test("WalInput.commit() frees whole segments the lake has", async () => {
  await withDir((dir) =>
    withWal(dir, async (wal) => {
      for (const r of RECORDS) await wal.append([bytes(r)]);
      const input = new WalInput(wal, 0, { onError: () => {} });
      try {
        await input.start({ handle: () => Promise.resolve() });
        assert.equal(await input.drain(5_000), true);
        await input.commit(WAL_TOPIC, 0, 4);
        assert.equal(wal.firstOffset, 4);
        assert.deepEqual(await segmentFiles(dir), [4, 6, 8].map(name));
      } finally {
        await input.close();
      }
    }, { segmentBytes: 100 })
  );
});

Deno.test("WalInput.drain() reports false when the handler does not keep up in time", async () => {
  await withDir((dir) =>
    withWal(dir, async (wal) => {
      let release!: () => void;
      const blocked = new Promise<void>((r) => (release = r));
      const input = new WalInput(wal, 0, { onError: () => {} });
      try {
        await input.start({ handle: () => blocked });
        await wal.append([bytes("a")]);
        assert.equal(await input.drain(30), false);
        release();
        assert.equal(await input.drain(5_000), true);
      } finally {
        release();
        await input.close();
      }
    })
  );
});
