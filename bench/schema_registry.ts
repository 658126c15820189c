/**
 * Schema Registry framing on beside off: what the wire format costs the produce and consume paths.
 * Not part of `deno task bench` (it needs the registry too):
 *
 * ```sh
 * deno task registry:start          # and Kafka: deno task kafka:start
 * deno run -A bench/schema_registry.ts [--records 100000] [--rounds 3]
 * ```
 *
 * Every figure is measured in this process with the product's own classes, on the real broker and
 * registry, in rounds that alternate the modes (the box is shared: rates swing with its load, CPU
 * time per record much less, so both are given):
 *
 * - **produce**: `KafkaEventLog.append` of the generator's events (all 13 types), 500 events per
 *   call and every call at once, as concurrent requests would: JSON encoding, framing (on) and
 *   kafkajs, acks=all, idempotent.
 * - **consume**: `KafkaInput` → `LakeLoader` with a writer that only counts (no DuckDB, no fraud
 *   scoring): kafkajs fetch, decoding (on: the registry decoder, JSON Schema validation of the
 *   writer's schema included) and the event validation every record gets.
 * - **alone**: the per-record work of framing and decoding without Kafka (best of 5 passes).
 *
 * CPU time is the process's (user + system, every thread: kafkajs, GC) over the records.
 *
 * @module
 */
import process from "node:process";
import { Buffer } from "node:buffer";
import { SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
import { createKafka, createProducer } from "../pipeline/kafka/client.ts";
import { KafkaEventLog } from "../pipeline/kafka/event_log.ts";
import { KafkaInput } from "../pipeline/kafka/input.ts";
import { SchemaRegistryClient } from "../pipeline/kafka/schema_registry.ts";
import { LakeLoader } from "../pipeline/lake_loader.ts";
import type { LogRecord, RecordDecoder } from "../pipeline/durable_log.ts";
import { encodeEnvelope } from "../pipeline/durable_log.ts";
import { eventRecordJsonSchema } from "../shared/schemas.ts";
import { createLogger } from "../shared/logger.ts";
import { clientEvents, gatewayRecords, meanBytes, VALIDATION } from "./lib/events.ts";
import { BROKERS, createTopics } from "./lib/services.ts";
import { loadAverage, runCleanups } from "./lib/proc.ts";

const arg = (name: string, dflt: number) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : dflt;
};
const N = arg("records", 100_000);
const ROUNDS = arg("rounds", 3);
const REGISTRY_URL = Deno.env.get("SCHEMA_REGISTRY_URL") ??
  `http://127.0.0.1:${Deno.env.get("REGISTRY_PORT") ?? "18081"}/apis/ccompat/v7`;
const logger = createLogger({ level: "warn" });
const id = `bench-sr-${crypto.randomUUID().slice(0, 8)}`;

type Mode = "off" | "json" | "avro";
interface Sample {
  ms: number;
  cpuMs: number;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function measure(fn: () => Promise<void>): Promise<Sample> {
  const c0 = cpuMs(), t0 = performance.now();
  await fn();
  return { ms: performance.now() - t0, cpuMs: cpuMs() - c0 };
}

const load0 = await loadAverage();
console.error(`bench: ${N} records × ${ROUNDS} rounds, load ${load0}`);
const { envelopes, encoded } = gatewayRecords(clientEvents(Math.min(N, 50_000), 3));
const events = Array.from({ length: N }, (_, i) => envelopes[i % envelopes.length]!);

const registry = new SchemaRegistryClient({
  url: REGISTRY_URL,
  compatibility: "BACKWARD",
  timeoutMs: 5000,
  retryMs: 10_000,
  logger,
});
// Produce rounds append to the first two; consume rounds read the others, N records each.
const produced = { off: `${id}-p-off`, json: `${id}-p-json` };
const topics: Record<Mode, string> = {
  off: `${id}-c-off`,
  json: `${id}-c-json`,
  avro: `${id}-c-avro`,
};
await createTopics([
  ...[...Object.values(produced), ...Object.values(topics)].map((t) => [t, 3] as [string, number]),
]);
const schema = eventRecordJsonSchema("reject");
await registry.register(
  [produced.json, topics.json].map((topic) => ({ topic, schema })),
  () => Deno.exit(2),
);
const framer = registry.framer(produced.json);
const kafka = createKafka({
  brokers: BROKERS.split(","),
  clientId: "bench-sr",
  connectionTimeoutMs: 5000,
  logger,
});

// ---------------------------------------------------------------------------------------------
// Produce: the events topic's producer, framing off and on.

async function produceRound(mode: "off" | "json", topic = produced[mode]): Promise<Sample> {
  const log = await KafkaEventLog.connect(kafka, {
    topic,
    maxBatch: 10_000,
    maxPending: 10_000_000,
    ...(mode === "json" ? { framer: registry.framer(topic) } : {}),
  });
  try {
    return await measure(async () => {
      const calls: Promise<void>[] = [];
      for (let i = 0; i < N; i += 500) calls.push(log.append(events.slice(i, i + 500)));
      await Promise.all(calls);
    });
  } finally {
    await log.close();
  }
}

// Avro records for the consume side, as another producer writes them (the client's encode).
const AVRO = {
  type: "record",
  name: "Event",
  namespace: "bench",
  fields: [
    { name: "event_id", type: "string" },
    { name: "type", type: "string" },
    { name: "user_id", type: "string" },
    { name: "occurred_at", type: "string" },
    { name: "received_at", type: "string" },
    { name: "source", type: "string" },
    {
      name: "payload",
      type: { type: "map", values: ["null", "boolean", "double", "string"] },
    },
  ],
};
async function fillAvro(): Promise<number> {
  const plain = new SchemaRegistry({ host: REGISTRY_URL });
  const { id: avroId } = await plain.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(AVRO) },
    { subject: `${topics.avro}-value` },
  );
  const producer = createProducer(kafka);
  await producer.connect();
  let bytes = 0;
  for (let i = 0; i < N; i += 5000) {
    const messages = [];
    for (const e of events.slice(i, i + 5000)) {
      const { event_type: _, ...rest } = e;
      const value = await plain.encode(avroId, {
        ...rest,
        type: e.event_type,
        payload: Object.fromEntries(
          Object.entries(e.payload).filter(([, v]) => typeof v !== "object" || v === null),
        ),
      });
      bytes += value.length;
      messages.push({ key: e.user_id, value });
    }
    await producer.send({ topic: topics.avro, acks: -1, messages });
  }
  await producer.disconnect();
  return bytes / N;
}

// ---------------------------------------------------------------------------------------------
// Consume: the worker's input and loader, with a writer that only counts.

async function consumeRound(mode: Mode, round: number): Promise<Sample> {
  let done: () => void;
  const all = new Promise<void>((r) => done = r);
  const loader = new LakeLoader(
    {
      write: (batch) =>
        Promise.resolve({ rows: batch.rows.length, skipped: 0, files: [], bytes: 0 }),
    },
    { send: () => Promise.resolve(), close: () => Promise.resolve() },
    {
      validation: VALIDATION,
      flushRows: 50_000,
      flushBytes: 32 << 20,
      flushIntervalMs: 2000,
      commit: () => Promise.resolve(),
      onError: (err) => logger.error("flush", { err }),
      ...(mode === "off" ? {} : { decoder: registry.decoder }),
    },
  );
  const counting = {
    handle: async (records: LogRecord[], heartbeat?: () => Promise<void>) => {
      await loader.handle(records, heartbeat);
      if (loader.stats.records >= N) done();
    },
  };
  const input = new KafkaInput(kafka, {
    groupId: `${id}-${mode}-${round}`,
    topics: [topics[mode]],
    fromBeginning: true,
  });
  const sample = await measure(async () => {
    await input.start(counting);
    await all;
  });
  if (loader.stats.accepted !== N) {
    throw new Error(`${mode}: ${loader.stats.accepted} of ${N} accepted`);
  }
  await input.stop();
  await loader.close();
  await input.close();
  return sample;
}

// ---------------------------------------------------------------------------------------------
// Alone: per-record CPU of framing and decoding, no Kafka (best of 5 passes over the records).

async function cpuPerRecord(records: number, fn: () => Promise<void> | void): Promise<number> {
  let best = Infinity;
  for (let pass = 0; pass < 5; pass++) {
    const c0 = cpuMs();
    await fn();
    best = Math.min(best, ((cpuMs() - c0) * 1000) / records);
  }
  return best;
}

async function alone(): Promise<Record<string, number>> {
  const bare = encoded.map((value, offset): LogRecord => ({
    topic: "t",
    partition: 0,
    offset,
    timestampMs: 0,
    value,
  }));
  const json = bare.map((r) => {
    const v = framer.frame(r.value);
    return { ...r, value: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
  });
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const chunks = async (records: LogRecord[], decoder: RecordDecoder) => {
    for (let i = 0; i < records.length; i += 2000) await decoder.decode(records.slice(i, i + 2000));
  };
  const n = bare.length;
  return {
    // What KafkaEventLog does per record, off and on.
    "encode (JSON bytes)": await cpuPerRecord(n, () => {
      for (const e of envelopes) Buffer.from(encodeEnvelope(e));
    }),
    "encode + frame": await cpuPerRecord(n, () => {
      for (const e of envelopes) framer.frame(encodeEnvelope(e));
    }),
    "parse bare JSON (UTF-8 + JSON.parse)": await cpuPerRecord(n, () => {
      for (const r of bare) JSON.parse(utf8.decode(r.value));
    }),
    "decoder on bare JSON (finds nothing framed)": await cpuPerRecord(
      n,
      () => chunks(bare, registry.decoder),
    ),
    "decoder on framed JSON (parse + JSON Schema validation)": await cpuPerRecord(
      n,
      () => chunks(json, registry.decoder),
    ),
  };
}

// ---------------------------------------------------------------------------------------------

const results: Record<string, Sample[]> = {
  "produce off": [],
  "produce on (JSON Schema)": [],
  "consume off (bare JSON)": [],
  "consume on (JSON Schema)": [],
  "consume on (Avro)": [],
};
try {
  const avroBytes = await fillAvro();
  await produceRound("off", topics.off);
  await produceRound("json", topics.json);
  for (let r = 0; r < ROUNDS; r++) {
    const order: ("off" | "json")[] = r % 2 ? ["json", "off"] : ["off", "json"];
    for (const m of order) {
      results[m === "off" ? "produce off" : "produce on (JSON Schema)"]!.push(
        await produceRound(m),
      );
    }
    console.error(`bench: produce round ${r + 1} done, load ${await loadAverage()}`);
  }
  for (let r = 0; r < ROUNDS; r++) {
    const order: Mode[] = r % 2 ? ["avro", "json", "off"] : ["off", "json", "avro"];
    for (const m of order) {
      const key = m === "off"
        ? "consume off (bare JSON)"
        : m === "json"
        ? "consume on (JSON Schema)"
        : "consume on (Avro)";
      results[key]!.push(await consumeRound(m, r));
    }
    console.error(`bench: consume round ${r + 1} done, load ${await loadAverage()}`);
  }
  const single = await alone();

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const lines = [
    `Schema Registry framing, ${N} records per run, ${ROUNDS} rounds (median, [min–max])`,
    `Load average: ${load0} at start, ${await loadAverage()} at end; ${navigator.hardwareConcurrency} cores`,
    `Record size: bare JSON ${meanBytes(encoded).toFixed(0)} B, framed +5 B, Avro ${
      avroBytes.toFixed(0)
    } B`,
    "",
    "| Path | records/s | CPU µs per record |",
    "| --- | --- | --- |",
  ];
  for (const [name, samples] of Object.entries(results)) {
    const rates = samples.map((s) => (N * 1000) / s.ms);
    const cpu = samples.map((s) => (s.cpuMs * 1000) / N);
    const fmt = (xs: number[], d: number) =>
      `${median(xs).toFixed(d)} [${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}]`;
    lines.push(`| ${name} | ${fmt(rates, 0)} | ${fmt(cpu, 1)} |`);
  }
  lines.push("", "| Alone, no Kafka | CPU µs per record |", "| --- | --- |");
  for (const [name, us] of Object.entries(single)) lines.push(`| ${name} | ${us.toFixed(2)} |`);
  console.log(lines.join("\n"));
} finally {
  registry.close();
  await runCleanups();
}
