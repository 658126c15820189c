// Tests of the embedded write-ahead log: durability across reopen, torn tails, segments.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ShuttingDownError } from "../../shared/errors.ts";
import { crc32, Wal, WAL_TOPIC } from "./wal.ts";
import { bytes, name, RECORDS, segmentFiles, texts, withDir, withWal } from "./testing.ts";

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
