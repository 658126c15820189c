/**
 * Item 9: CPU time per event on every ingest path, each beside its limit measured in the same run.
 * The figure is the process' own CPU time (user + system, every thread, from `/proc/<pid>/stat`)
 * divided by the events it handled: wrk and the broker share the two cores, so rates move with
 * the load while CPU per event hardly does.
 *
 * | path                               | limit                                                  |
 * | ---------------------------------- | ------------------------------------------------------ |
 * | single-event POST, embedded, Kafka | bare `Deno.serve` per request                          |
 * | batched POST → Kafka               | kafkajs producer alone, gateway settings, 4 in flight  |
 * | batched POST → embedded WAL        | —                                                      |
 * | Kafka → bronze with rules          | a kafkajs consumer alone on the same topic              |
 *
 * Runs alone with `deno task bench --only 9` (~2 minutes).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { join } from "node:path";
import type { ClientEvent } from "../scripts/events_gen.ts";
import { type Bench, pick, stopGateway } from "./lib/context.ts";
import { clientEvents, gatewayRecords } from "./lib/events.ts";
import { lakeRows, singleRequests } from "./http_ingest.ts";
import {
  CpuMeter,
  dataDirs,
  freePort,
  type Gateway,
  RssSampler,
  sleep,
  spawnDeno,
  startHello,
  startMain,
  tempDir,
  waitForHttp,
} from "./lib/proc.ts";
import { fmtInt, fmtMb, fmtMs } from "./lib/report.ts";
import {
  bareConsumer,
  BROKERS,
  createTopics,
  kafka,
  prefillTopic,
  startKafkaWorker,
} from "./lib/services.ts";
import { runWrk, type WrkRequest, type WrkResult } from "./lib/wrk.ts";

/** What one path cost. */
export interface CpuFigure {
  events: number;
  cpuSeconds: number;
  usPerEvent: number;
  eventsPerSec: number;
  p99Ms?: number;
  /** The process' peak RSS over the phase. */
  peakRssMb?: number;
}

const fig = (
  events: number,
  cpuSeconds: number,
  seconds: number,
  extra: { p99Ms?: number; peakRssMb?: number } = {},
): CpuFigure => ({
  events,
  cpuSeconds,
  usPerEvent: events > 0 ? (cpuSeconds * 1e6) / events : 0,
  eventsPerSec: seconds > 0 ? events / seconds : 0,
  ...extra,
});

const line = (f: CpuFigure) =>
  `${f.usPerEvent.toFixed(1)} µs CPU/event (${fmtInt(f.eventsPerSec)}/s${
    f.p99Ms !== undefined ? `, p99 ${fmtMs(f.p99Ms)} ms` : ""
  }${f.peakRssMb !== undefined ? `, peak RSS ${fmtMb(f.peakRssMb)}` : ""})`;

function batches(events: readonly ClientEvent[], size: number): WrkRequest[] {
  const out: WrkRequest[] = [];
  for (let i = 0; i + size <= events.length; i += size) {
    out.push({
      method: "POST",
      path: "/events",
      contentType: "application/json",
      body: JSON.stringify(events.slice(i, i + size)),
    });
  }
  return out;
}

/** wrk against a process for `seconds` after a short warm-up; its CPU over the measured part. */
async function loadCpu(
  pid: number,
  url: string,
  requests: WrkRequest[],
  opts: { connections: number; seconds: number; perRequest: number },
): Promise<{ figure: CpuFigure; wrk: WrkResult }> {
  await runWrk(url, requests, { connections: opts.connections, seconds: 2 });
  const rss = await RssSampler.start(pid);
  const cpu = await CpuMeter.start(pid);
  const wrk = await runWrk(url, requests, {
    connections: opts.connections,
    seconds: opts.seconds,
    countStatus: true,
  });
  const used = await cpu.seconds();
  const { peakMb } = await rss.stop();
  const ok = (wrk.codes["202"] ?? 0) + (wrk.codes["200"] ?? 0);
  return {
    figure: fig(ok * opts.perRequest, used, wrk.seconds, {
      p99Ms: wrk.latencyMs.p99,
      peakRssMb: peakMb,
    }),
    wrk,
  };
}

/** Item 9. */
export async function benchCpu(b: Bench): Promise<void> {
  const seconds = pick(b, 8, 3);
  const events = clientEvents(pick(b, 20_000, 4_000));
  const single = singleRequests(events.slice(0, 2_000));
  const out: Record<string, CpuFigure> = {};

  const hello = await startHello();
  out.bare_deno_serve = (await loadCpu(hello.pid, hello.url, [{ method: "GET", path: "/" }], {
    connections: 50,
    seconds,
    perRequest: 1,
  })).figure;
  await hello.stop();
  // The app alone: Deno.serve + Hono + middleware + body + validation, a log that confirms at once.
  const app = await startApp();
  out.app_alone = (await loadCpu(app.pid, app.url, single, {
    connections: 50,
    seconds,
    perRequest: 1,
  })).figure;
  await app.stop();

  const embedded = async (key: string, reqs: WrkRequest[], per: number, conns: number) => {
    const gw = await startMain(dataDirs(await tempDir("cpu_embedded")));
    out[key] = (await loadCpu(gw.pid, gw.url, reqs, {
      connections: conns,
      seconds,
      perRequest: per,
    })).figure;
    await stopGateway(b, `cpu_${key}`, gw);
  };
  await embedded("single_embedded", single, 1, 50);
  await embedded("batch_embedded", batches(events, 1000), 1000, 4);

  const id = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const topic = `${id}-events`;
  await createTopics([[topic, 3], [`${id}-dlq`, 1], [`${id}-alerts`, 1], [`${id}-fill`, 3]]);
  const gw: Gateway = await startMain({
    ROLE: "gateway",
    KAFKA_BROKERS: BROKERS,
    KAFKA_TOPIC_EVENTS: topic,
    KAFKA_TOPIC_DEAD_LETTER: `${id}-dlq`,
  });
  out.single_kafka = (await loadCpu(gw.pid, gw.url, single, {
    connections: 50,
    seconds,
    perRequest: 1,
  })).figure;
  out.batch_kafka = (await loadCpu(gw.pid, gw.url, batches(events, 1000), {
    connections: 4,
    seconds,
    perRequest: 1000,
  })).figure;
  await stopGateway(b, "cpu_kafka_gateway", gw);
  out.kafkajs_producer_alone = await producerAlone(b, topic, events);

  const fill = `${id}-fill`;
  const total = pick(b, 600_000, 100_000);
  await prefillTopic(fill, total, events);
  out.kafkajs_consumer_alone = await consumerAlone(fill, total);
  out.kafka_bronze = await workerCpu(b, id, fill, total);

  b.report.details.cpu_per_event = out;
  const rows: [string, string, CpuFigure, string, CpuFigure | undefined][] = [
    ["9a", "single-event POST, embedded", out.single_embedded!, "app alone", out.app_alone],
    ["9b", "single-event POST, Kafka gateway", out.single_kafka!, "app alone", out.app_alone],
    [
      "9f",
      "single-event POST, the app alone (bench/app_server.ts, a log that confirms at once)",
      out.app_alone!,
      "bare Deno.serve",
      out.bare_deno_serve,
    ],
    [
      "9c",
      "batched POST (arrays of 1000) → Kafka gateway",
      out.batch_kafka!,
      "kafkajs producer alone",
      out.kafkajs_producer_alone,
    ],
    [
      "9d",
      "batched POST (arrays of 1000) → embedded WAL + lake",
      out.batch_embedded!,
      "",
      undefined,
    ],
    [
      "9e",
      "Kafka → bronze, validation + rules (ROLE=worker)",
      out.kafka_bronze!,
      "kafkajs consumer alone",
      out.kafkajs_consumer_alone,
    ],
  ];
  for (const [rowId, what, f, limitName, limit] of rows) {
    b.report.add({
      id: rowId,
      what: `CPU per event: ${what}`,
      figure: line(f),
      value: f.usPerEvent,
      unit: "µs/event",
      ...(limit ? { limit: `${limitName}: ${line(limit)}` } : {}),
      target: "lower than before (bench/findings.md)",
    });
  }
}

/** The kafkajs producer alone, with the gateway's settings and 4 sends of 2,000 in flight. */
async function producerAlone(
  b: Bench,
  topic: string,
  events: readonly ClientEvent[],
): Promise<CpuFigure> {
  const { envelopes, encoded } = gatewayRecords(events);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 5 });
  await producer.connect();
  const total = pick(b, 400_000, 40_000), size = 2_000, inFlight = 4;
  let next = 0;
  const cpu = await CpuMeter.start();
  const t0 = performance.now();
  const sender = async () => {
    while (next < total) {
      const from = next;
      next += size;
      const messages = [];
      for (let i = 0; i < size; i++) {
        const k = (from + i) % envelopes.length;
        messages.push({ key: envelopes[k]!.user_id, value: Buffer.from(encoded[k]!) });
      }
      await producer.send({ topic, acks: -1, messages });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, sender));
  const f = fig(next, await cpu.seconds(), (performance.now() - t0) / 1000);
  await producer.disconnect();
  return f;
}

/** A kafkajs consumer alone reading the whole topic, nothing done with the records. */
async function consumerAlone(topic: string, total: number): Promise<CpuFigure> {
  const consumer = await bareConsumer(topic, "alone");
  let seen = 0;
  let cpu: CpuMeter | undefined, t0 = 0;
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: 3,
    eachBatch: async ({ batch }) => {
      if (!cpu) (cpu = await CpuMeter.start(), t0 = performance.now());
      seen += batch.messages.length;
    },
  });
  const deadline = Date.now() + 120_000;
  while (seen < total && Date.now() < deadline) await sleep(50);
  const f = fig(seen, (await cpu?.seconds()) ?? 0, (performance.now() - t0) / 1000);
  await consumer.disconnect();
  return f;
}

/** A worker consuming the pre-filled topic into bronze: its CPU from start to the last row. */
async function workerCpu(b: Bench, id: string, topic: string, total: number): Promise<CpuFigure> {
  const lakeDir = join(await tempDir("cpu_worker"), "lake");
  const worker = await startKafkaWorker(id, topic, lakeDir);
  // From "Listening": engine start-up and the group join are in the figure, as small as they are
  // next to hundreds of thousands of events.
  const rss = await RssSampler.start(worker.pid);
  const cpu = await CpuMeter.start(worker.pid);
  const t0 = performance.now();
  let rows = 0;
  const deadline = Date.now() + 300_000;
  while (rows < total && Date.now() < deadline) {
    await sleep(500);
    rows = await lakeRows(lakeDir, topic, 3);
  }
  const used = await cpu.seconds();
  const { peakMb } = await rss.stop();
  const f = fig(rows, used, (performance.now() - t0) / 1000, { peakRssMb: peakMb });
  await stopGateway(b, "cpu_kafka_worker", worker);
  return f;
}

/** `bench/app_server.ts` on a free port. */
async function startApp() {
  const port = freePort();
  const bg = spawnDeno("bench/app_server.ts", [String(port)], {});
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/health`);
  return { ...bg, url };
}
