// KafkaLag (pipeline/kafka/lag.ts) against the real broker: high watermark minus the group's
// committed offset, per partition. Needs Kafka (`deno task kafka:start`); fails, never skips, without it.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { Partitioners } from "kafkajs";
import { KafkaLag } from "../pipeline/kafka/lag.ts";
import { kafka, setup, teardown } from "./kafka_helpers.ts";

Deno.test("KafkaLag.read() is the high watermark minus the committed offset, per partition", async () => {
  const s = await setup("lag", 2);
  const groupId = `${s.events}-group`;
  const lag = new KafkaLag(kafka, { groupId, topics: [s.events] });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  const admin = kafka.admin();
  try {
    await producer.connect();
    await producer.send({
      topic: s.events,
      acks: -1,
      messages: [
        ...Array.from({ length: 5 }, (_, i) => ({ partition: 0, value: `a${i}` })),
        ...Array.from({ length: 2 }, (_, i) => ({ partition: 1, value: `b${i}` })),
      ],
    });
    // Nothing committed: everything retained counts.
    assert.deepEqual(sorted(await lag.read()), [
      { topic: s.events, partition: 0, lag: 5 },
      { topic: s.events, partition: 1, lag: 2 },
    ]);
    await admin.connect();
    await admin.setOffsets({
      groupId,
      topic: s.events,
      partitions: [{ partition: 0, offset: "3" }],
    });
    assert.deepEqual(sorted(await lag.read()), [
      { topic: s.events, partition: 0, lag: 2 },
      { topic: s.events, partition: 1, lag: 2 },
    ]);
  } finally {
    await lag.close();
    await lag.close(); // safe twice
    await producer.disconnect();
    await admin.disconnect();
    await teardown(s);
  }
  await assert.rejects(() => lag.read(), /closed/);
});

function sorted<T extends { partition: number }>(lags: T[]): T[] {
  return lags.toSorted((a, b) => a.partition - b.partition);
}
