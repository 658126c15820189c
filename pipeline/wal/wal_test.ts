// Tests of the embedded write-ahead log: durability across reopen, torn tails, segments, inputs.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ShuttingDownError } from "../../shared/errors.ts";
import type { LogRecord } from "../durable_log.ts";
import type { Envelope } from "../../shared/schemas.ts";
import { crc32, Wal, WAL_TOPIC, WalEventLog, WalInput } from "./wal.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytes(s: string): Uint8Array {
  return encoder.encode(s);
}

function texts(records: LogRecord[]): string[] {
  return records.map((r) => decoder.decode(r.value));
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wal_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Opens a WAL, runs `fn`, and always closes it. */
async function withWal(
  dir: string,
  fn: (wal: Wal) => Promise<void>,
  options: Parameters<typeof Wal.open>[1] = {},
): Promise<void> {
  const wal = await Wal.open(dir, options);
  try {
    await fn(wal);
  } finally {
    await wal.close();
  }
}

async function segmentFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".wal")) names.push(e.name);
  return names.sort();
}

/** 10 payloads of 20 bytes each: a frame is 36 bytes with its header. */
const RECORDS = Array.from({ length: 10 }, (_, i) => `record-${String(i).padStart(13, "0")}`);

Deno.test("crc32() matches the IEEE check value", () => {
  assert.equal(crc32(bytes("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(crc32(bytes("The quick brown fox jumps over the lazy dog")), 0x414fa339);
});

Deno.test("Wal.append() then read() returns the same bytes with dense offsets from 0", async () => {
  await withDir((dir) =>
    withWal(dir, async (wal) => {
      assert.equal(wal.nextOffset, 0);
      assert.equal(wal.firstOffset, 0);
      assert.deepEqual(await wal.read(0, 10), [], "nothing to read yet");

      const before = Date.now();
      await wal.append([bytes("a"), bytes(""), bytes('{"x":1}')]);
      await wal.append([new Uint8Array([0, 255, 10, 13])]);
      assert.equal(wal.nextOffset, 4);

      const records = await wal.read(0, 100);
      assert.deepEqual(records.map((r) => r.offset), [0, 1, 2, 3]);
      assert.deepEqual(texts(records.slice(0, 3)), ["a", "", '{"x":1}']);
      assert.deepEqual(records[3]!.value, new Uint8Array([0, 255, 10, 13]));
      for (const r of records) {
        assert.equal(r.topic, WAL_TOPIC);
        assert.equal(r.partition, 0);
        assert.ok(r.timestampMs >= before && r.timestampMs <= Date.now(), "append time");
      }
      assert.deepEqual(texts(await wal.read(2, 1)), ['{"x":1}'], "from an offset, maxRecords");
      assert.deepEqual(await wal.read(4, 10), [], "at nextOffset");
    })
  );
});

Deno.test("Wal.append() gives concurrent appends distinct dense offsets", async () => {
  await withDir((dir) =>
    withWal(dir, async (wal) => {
      await Promise.all(Array.from({ length: 50 }, (_, i) => wal.append([bytes(`r${i}`)])));
      assert.equal(wal.nextOffset, 50);
      assert.equal(wal.pending, 0);
      const got = texts(await wal.read(0, 100));
      assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => `r${i}`));
    })
  );
});

Deno.test("Wal.read() returns a record larger than one read chunk whole", async () => {
  await withDir((dir) =>
    withWal(dir, async (wal) => {
      const big = Uint8Array.from({ length: 200 * 1024 }, (_, i) => (i * 7919) % 251);
      await wal.append([bytes("small"), big, bytes("after")]);
      const records = await wal.read(1, 10, 1);
      assert.equal(records[0]!.offset, 1);
      assert.deepEqual(records[0]!.value, big);
      const rest = await wal.read(0, 10);
      assert.deepEqual(texts([rest[0]!, rest[2]!]), ["small", "after"]);
      assert.deepEqual(rest[1]!.value, big);
    })
  );
});

Deno.test("Wal.nextOffset survives close and reopen", async () => {
  await withDir(async (dir) => {
    await withWal(dir, (wal) => wal.append(RECORDS.slice(0, 3).map(bytes)));
    await withWal(dir, async (wal) => {
      assert.equal(wal.nextOffset, 3);
      await wal.append([bytes(RECORDS[3]!)]);
      assert.deepEqual(texts(await wal.read(0, 10)), RECORDS.slice(0, 4));
    });
    await withWal(dir, (wal) => {
      assert.equal(wal.nextOffset, 4);
      return Promise.resolve();
    });
  });
});

Deno.test("Wal.open() cuts off a torn tail and appends continue at the right offset", async (t) => {
  const segment = (dir: string) => join(dir, "00000000000000000000.wal");

  await t.step("garbage bytes after the last frame", async () => {
    await withDir(async (dir) => {
      await withWal(dir, (wal) => wal.append(RECORDS.slice(0, 3).map(bytes)));
      const goodSize = (await Deno.stat(segment(dir))).size;
      await Deno.writeFile(segment(dir), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), {
        append: true,
      });
      await withWal(dir, async (wal) => {
        assert.equal(wal.nextOffset, 3);
        assert.equal((await Deno.stat(segment(dir))).size, goodSize, "tail truncated on disk");
        await wal.append([bytes("after")]);
        assert.deepEqual(texts(await wal.read(0, 10)), [...RECORDS.slice(0, 3), "after"]);
      });
    });
  });

  await t.step("a header that claims more bytes than are left", async () => {
    await withDir(async (dir) => {
      await withWal(dir, (wal) => wal.append(RECORDS.slice(0, 2).map(bytes)));
      const frame = new Uint8Array(16 + 4);
      new DataView(frame.buffer).setUint32(0, 1000, true);
      await Deno.writeFile(segment(dir), frame, { append: true });
      await withWal(dir, (wal) => {
        assert.equal(wal.nextOffset, 2);
        return Promise.resolve();
      });
    });
  });

  await t.step("the last frame truncated mid-way", async () => {
    await withDir(async (dir) => {
      await withWal(dir, (wal) => wal.append(RECORDS.slice(0, 3).map(bytes)));
      const size = (await Deno.stat(segment(dir))).size;
      await Deno.truncate(segment(dir), size - 7);
      await withWal(dir, async (wal) => {
        assert.equal(wal.nextOffset, 2);
        await wal.append([bytes("again")]);
        const records = await wal.read(0, 10);
        assert.deepEqual(records.map((r) => r.offset), [0, 1, 2]);
        assert.deepEqual(texts(records), [...RECORDS.slice(0, 2), "again"]);
      });
      await withWal(dir, (wal) => {
        assert.equal(wal.nextOffset, 3, "the repaired log reopens cleanly");
        return Promise.resolve();
      });
    });
  });

  await t.step("a last frame whose CRC does not match", async () => {
    await withDir(async (dir) => {
      await withWal(dir, (wal) => wal.append(RECORDS.slice(0, 3).map(bytes)));
      const data = await Deno.readFile(segment(dir));
      data[data.byteLength - 1]! ^= 0x01;
      await Deno.writeFile(segment(dir), data);
      await withWal(dir, async (wal) => {
        assert.equal(wal.nextOffset, 2);
        assert.deepEqual(texts(await wal.read(0, 10)), RECORDS.slice(0, 2));
      });
    });
  });
});

Deno.test("Wal with small segmentBytes rolls segments and reads across them", async () => {
  await withDir(async (dir) => {
    // Frames are 36 bytes: two fit in 100 bytes, the third rolls to a new segment.
    const options = { segmentBytes: 100 };
    await withWal(dir, async (wal) => {
      for (const r of RECORDS) await wal.append([bytes(r)]);
      assert.equal(wal.nextOffset, 10);
      assert.deepEqual(await segmentFiles(dir), [0, 2, 4, 6, 8].map(name));

      assert.deepEqual(texts(await wal.read(0, 100)), RECORDS, "all at once");
      assert.deepEqual(texts(await wal.read(3, 4)), RECORDS.slice(3, 7), "from mid-segment");
      // Reading on in small steps, as the input does.
      const seen: string[] = [];
      for (let at = 0; at < wal.nextOffset;) {
        const batch = await wal.read(at, 3);
        assert.equal(batch[0]!.offset, at);
        seen.push(...texts(batch));
        at = batch.at(-1)!.offset + 1;
      }
      assert.deepEqual(seen, RECORDS);
    }, options);

    await withWal(dir, async (wal) => {
      assert.equal(wal.nextOffset, 10);
      assert.deepEqual(texts(await wal.read(5, 100)), RECORDS.slice(5));
    }, options);
  });
});

function name(base: number): string {
  return `${String(base).padStart(20, "0")}.wal`;
}

Deno.test("Wal.truncateBefore() deletes only whole segments below the offset", async (t) => {
  await withDir((dir) =>
    withWal(dir, async (wal) => {
      for (const r of RECORDS) await wal.append([bytes(r)]);
      assert.deepEqual(await segmentFiles(dir), [0, 2, 4, 6, 8].map(name));

      await t.step("an offset inside a segment keeps that segment", async () => {
        await wal.truncateBefore(5);
        assert.deepEqual(await segmentFiles(dir), [4, 6, 8].map(name));
        assert.equal(wal.firstOffset, 4);
        assert.deepEqual(texts(await wal.read(4, 100)), RECORDS.slice(4));
      });

      await t.step("reading below firstOffset throws", async () => {
        await assert.rejects(wal.read(3, 10), /oldest stored offset is 4/);
        await assert.rejects(wal.read(0, 10), /offset 0/);
      });

      await t.step("an offset at a segment boundary deletes the segment before it", async () => {
        await wal.truncateBefore(6);
        assert.deepEqual(await segmentFiles(dir), [6, 8].map(name));
        assert.equal(wal.firstOffset, 6);
      });

      await t.step("never the active segment, even past nextOffset", async () => {
        await wal.truncateBefore(1_000);
        assert.deepEqual(await segmentFiles(dir), [name(8)]);
        assert.equal(wal.firstOffset, 8);
        assert.equal(wal.nextOffset, 10);
        assert.deepEqual(texts(await wal.read(8, 10)), RECORDS.slice(8));
        await wal.append([bytes("more")]);
        assert.deepEqual(texts(await wal.read(10, 10)), ["more"]);
      });
    }, { segmentBytes: 100 })
  );
});

Deno.test("Wal.open() after truncateBefore() keeps offsets", async () => {
  await withDir(async (dir) => {
    await withWal(dir, async (wal) => {
      for (const r of RECORDS) await wal.append([bytes(r)]);
      await wal.truncateBefore(7);
    }, { segmentBytes: 100 });
    await withWal(dir, async (wal) => {
      assert.equal(wal.firstOffset, 6);
      assert.equal(wal.nextOffset, 10);
      assert.deepEqual(texts(await wal.read(6, 10)), RECORDS.slice(6));
    }, { segmentBytes: 100 });
  });
});

Deno.test("Wal.close() flushes queued appends, then refuses new ones", async () => {
  await withDir(async (dir) => {
    const wal = await Wal.open(dir);
    const appended = wal.append([bytes("x"), bytes("y")]);
    await wal.close();
    await appended;
    await assert.rejects(wal.append([bytes("z")]), ShuttingDownError);
    await wal.close(); // twice is fine
    await wal.waitFor(100); // resolves at once once closed
    await withWal(dir, (reopened) => {
      assert.equal(reopened.nextOffset, 2);
      return Promise.resolve();
    });
  });
});

Deno.test("Wal.waitFor() resolves on append or abort", async () => {
  await withDir((dir) =>
    withWal(dir, async (wal) => {
      let woke = false;
      const waiting = wal.waitFor(0).then(() => (woke = true));
      await new Promise((r) => setTimeout(r, 0));
      assert.equal(woke, false);
      await wal.append([bytes("a")]);
      await waiting;
      assert.equal(woke, true);
      await wal.waitFor(0); // already there: immediate

      const abort = new AbortController();
      const aborted = wal.waitFor(5, abort.signal);
      abort.abort();
      await aborted;
    })
  );
});

function event(i: number): Envelope {
  return {
    event_id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
    type: "login",
    event_type: "login",
    user_id: `u${i}`,
    occurred_at: "2024-05-01T12:00:00.000000Z",
    received_at: "2024-05-01T12:00:01.000000Z",
    source: "http",
    payload: { i },
  };
}

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
