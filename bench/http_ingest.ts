/**
 * Items 1, 2 and the overload part of 7: `POST /events` under wrk.
 *
 * 1. One event per request at 50 connections, embedded (WAL fsync) and Kafka (`ROLE=gateway`),
 *    beside a bare `Deno.serve` hello-world on the same machine.
 * 2. Batches (JSON arrays of 100 and 1000, NDJSON of 1000) into Kafka with `ROLE=gateway`, beside
 *    Kafka's ProducerPerformance (same broker, same record size, acks=all), with the stages of the
 *    gateway's path timed alone: body parse + validation + encoding, and the kafkajs producer.
 * 7. Overload: batches into the embedded mode faster than the lake can write, watching RSS and the
 *    503 / 429 pushback.
 *
 * @module
 */
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { decodeUtf8, parseBody } from "../routes/body.ts";
import { createKafka } from "../pipeline/kafka/client.ts";
import { KafkaEventLog } from "../pipeline/kafka/event_log.ts";
import { encodeEnvelope } from "../pipeline/durable_log.ts";
import { createLogger } from "../shared/logger.ts";
import { Wal } from "../pipeline/wal/wal.ts";
import { validateEvent } from "../pipeline/validate.ts";
import type { ClientEvent } from "../scripts/events_gen.ts";
import { type Bench, percentiles, perSec, pick, stopGateway } from "./lib/context.ts";
import { clientEvents, DEFAULTS, gatewayRecords, meanBytes, VALIDATION } from "./lib/events.ts";
import {
  dataDirs,
  freePort,
  type Gateway,
  onCleanup,
  type RssReport,
  RssSampler,
  spawnDeno,
  startHello,
  startMain,
  tempDir,
  waitForHttp,
} from "./lib/proc.ts";
import { fmtInt, fmtMb, fmtMs, pct } from "./lib/report.ts";
import { BROKERS, createTopics, kafka, producerPerf } from "./lib/services.ts";
import { runWrk, type WrkOptions, type WrkRequest, type WrkResult } from "./lib/wrk.ts";
import { LakeEngine } from "../lake/engine/engine.ts";
import { Lake } from "../lake/lake.ts";
import { LocalStore } from "../lake/storage/local.ts";

const SINGLE_CONNECTIONS = 50;
/** Connections for batched bodies: enough to keep a group commit full, few enough to not thrash. */
const BATCH_CONNECTIONS = 16;
const RSS_TARGET_MB = 400;

const LIMITS = {
  maxBytes: DEFAULTS.MAX_BODY_BYTES,
  maxEvents: DEFAULTS.MAX_EVENTS_PER_REQUEST,
  maxDepth: DEFAULTS.MAX_JSON_DEPTH,
};

export function singleRequests(events: readonly ClientEvent[]): WrkRequest[] {
  return events.map((e) => ({
    method: "POST",
    path: "/events",
    contentType: "application/json",
    body: JSON.stringify(e),
  }));
}

function batchRequests(events: readonly ClientEvent[], size: number, ndjson: boolean) {
  const out: WrkRequest[] = [];
  for (let i = 0; i + size <= events.length; i += size) {
    const part = events.slice(i, i + size);
    out.push({
      method: "POST",
      path: "/events",
      contentType: ndjson ? "application/x-ndjson" : "application/json",
      body: ndjson ? part.map((e) => JSON.stringify(e)).join("\n") + "\n" : JSON.stringify(part),
    });
  }
  return out;
}

/** A short warm-up run (JIT, connections, first lake flush), then the measured one. */
async function load(
  url: string,
  requests: WrkRequest[],
  options: WrkOptions,
  warmSeconds: number,
): Promise<WrkResult> {
  if (warmSeconds > 0) await runWrk(url, requests, { ...options, seconds: warmSeconds });
  return await runWrk(url, requests, options);
}

/** Successful responses per second: wrk's non-2xx/3xx responses do not count. */
function okRps(r: WrkResult): number {
  return (r.requests - r.errors.status) / r.seconds;
}

function non2xx(r: WrkResult): string {
  const codes = Object.entries(r.codes).filter(([c]) => !c.startsWith("2"));
  if (codes.length > 0) return ` (${codes.map(([c, n]) => `${fmtInt(n)}× ${c}`).join(", ")})`;
  return r.errors.status > 0 ? ` (${fmtInt(r.errors.status)} non-2xx)` : "";
}

/** The memory row of one process. */
export function memoryRow(
  b: Bench,
  id: string,
  what: string,
  rss: RssReport,
  targetMb = RSS_TARGET_MB,
): void {
  b.report.add({
    id,
    what: `Peak RSS: ${what}`,
    figure: `${fmtMb(rss.peakMb)} (last ${fmtMb(rss.lastMb)})`,
    value: rss.peakMb,
    unit: "MB",
    limit: `RSS when the phase began: ${fmtMb(rss.firstMb)}`,
    target: `< ${fmtInt(targetMb)} MB`,
    pass: rss.peakMb < targetMb,
  });
}

/** Items 1 and 2 (and their processes' RSS for item 7). */
export async function benchIngest(b: Bench): Promise<void> {
  const seconds = pick(b, 10, 3);
  const warm = pick(b, 3, 1);
  const events = clientEvents(pick(b, 20_000, 4_000));
  const single = singleRequests(events.slice(0, 2_000));
  const singleOpts = { connections: SINGLE_CONNECTIONS, seconds };

  // The baseline: a bare Deno.serve hello-world, same connections, same wrk.
  const hello = await startHello();
  const bare = await load(hello.url, [{ method: "GET", path: "/" }], singleOpts, warm);
  await hello.stop();
  b.report.details.bare_deno_serve = bare;
  const bareRps = okRps(bare);
  const bareLimit = `bare Deno.serve ${fmtInt(bareRps)} req/s`;
  const bareLatency = `bare Deno.serve ${fmtMs(bare.latencyMs.p50)} / ${
    fmtMs(bare.latencyMs.p99)
  } ms`;

  const singleRows = (ids: [string, string], mode: string, r: WrkResult) => {
    const rps = okRps(r);
    b.report.add({
      id: ids[0],
      what: `POST /events, 1 event per request, ${mode}, ${SINGLE_CONNECTIONS} connections`,
      figure: `${fmtInt(rps)} req/s${non2xx(r)}`,
      value: rps,
      unit: "req/s",
      limit: bareLimit,
      ratio: pct(rps, bareRps),
      target: "≥ 30% of bare",
      pass: rps >= 0.3 * bareRps && r.errors.status === 0,
    });
    b.report.add({
      id: ids[1],
      what: `… latency p50 / p99, ${mode}`,
      figure: `${fmtMs(r.latencyMs.p50)} / ${fmtMs(r.latencyMs.p99)} ms`,
      value: r.latencyMs.p99,
      unit: "ms",
      limit: bareLatency,
      target: "p99 < 25 ms",
      pass: r.latencyMs.p99 < 25,
    });
  };

  // 1, embedded: HTTP → WAL (fdatasync group commit) → lake, all in one process.
  {
    const dir = await tempDir("embedded");
    const gw = await startMain(dataDirs(dir));
    const rss = await RssSampler.start(gw.pid);
    const r = await load(gw.url, single, singleOpts, warm);
    const mem = await rss.stop();
    await stopGateway(b, "single_embedded", gw);
    b.report.details.single_embedded = { wrk: r, rss: mem };
    singleRows(["1a", "1b"], "embedded (WAL fsync)", r);
    memoryRow(b, "7a", "embedded gateway during 1", mem);
  }

  // 1 and 2, Kafka: ROLE=gateway (HTTP → Kafka only; no lake writer competing).
  const id = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const topic = `${id}-events`;
  await createTopics([[topic, 3], [`${id}-dlq`, 1], [`${id}-perf`, 3]]);
  const gw = await startMain({
    ROLE: "gateway",
    KAFKA_BROKERS: BROKERS,
    KAFKA_TOPIC_EVENTS: topic,
    KAFKA_TOPIC_DEAD_LETTER: `${id}-dlq`,
  });
  const rss = await RssSampler.start(gw.pid);
  const r1 = await load(gw.url, single, singleOpts, warm);
  b.report.details.single_kafka = { wrk: r1 };
  singleRows(["1c", "1d"], "Kafka (ROLE=gateway, acks=all)", r1);
  await singleStages(b, events, topic, single, bareRps);

  // Large batches at 4 connections keep a group commit at ≤ 4,000 events (~0.5 MB a partition).
  // The last variant lets it reach GROUP_COMMIT_MAX_EVENTS (10,000 events, ~1.2 MB a partition,
  // over the broker's 1 MB message.max.bytes); it runs last since it may break the producer.
  const variants: [string, WrkRequest[], number, number][] = [
    ["JSON arrays of 100", batchRequests(events, 100, false), 100, BATCH_CONNECTIONS],
    ["JSON arrays of 1000", batchRequests(events, 1000, false), 1000, 4],
    ["NDJSON of 1000", batchRequests(events, 1000, true), 1000, 4],
    ["JSON arrays of 1000", batchRequests(events, 1000, false), 1000, BATCH_CONNECTIONS],
  ];
  const batchResults: {
    what: string;
    connections: number;
    eventsPerSec: number;
    mbPerSec: number;
    r: WrkResult;
  }[] = [];
  for (const [what, reqs, size, connections] of variants) {
    const r = await load(gw.url, reqs, { connections, seconds, countStatus: true }, warm);
    const ok = (r.codes["202"] ?? 0) / r.seconds;
    batchResults.push({
      what,
      connections,
      eventsPerSec: ok * size,
      mbPerSec: r.rps > 0 ? r.bodyMBps * (ok / r.rps) : 0,
      r,
    });
  }
  const mem = await rss.stop();
  await stopGateway(b, "kafka_gateway", gw);
  const problems = Object.entries(gw.problems()).filter(([k]) =>
    /larger than the max message size|out of order sequence/i.test(k)
  );
  if (problems.length > 0) {
    b.report.limitedBy(
      "2",
      `the gateway logged ${
        problems.map(([k, v]) => `${v.count}× "${k.replace(/^error: /, "")}"`).join(", ")
      }: a group commit of up to GROUP_COMMIT_MAX_EVENTS (10,000) events of ~370 B puts ` +
        `~1.2 MB into each of 3 partitions' record batches, over the broker's message.max.bytes ` +
        `(1 MB), and the produce fails (503)${
          problems.some(([k]) => /out of order/i.test(k))
            ? "; afterwards the idempotent producer's sequence numbers are out of step"
            : ""
        }.`,
    );
  }
  b.report.details.batch_kafka = { results: batchResults, rss: mem };
  memoryRow(b, "7b", "Kafka gateway (ROLE=gateway) during 1 and 2", mem);

  // The limit: Kafka's own producer, same broker, the mean size of the records the gateway
  // produces (the envelope with received_at, source and event_id filled in), acks=all.
  const { encoded } = gatewayRecords(events.slice(0, 2_000));
  const recordSize = Math.round(meanBytes(encoded));
  const perf = await producerPerf(`${id}-perf`, pick(b, 2_000_000, 200_000), { recordSize });
  b.report.details.producer_performance = { recordSize, ...perf };
  for (const [i, r] of batchResults.entries()) {
    b.report.add({
      id: `2${"abcd"[i]}`,
      what: `Batched POST /events → Kafka (ROLE=gateway), ${r.what}, ${r.connections} connections`,
      figure: `${fmtInt(r.eventsPerSec)} events/s, ${r.mbPerSec.toFixed(1)} MB/s, p99 ${
        fmtMs(r.r.latencyMs.p99)
      } ms${non2xx(r.r)}`,
      value: r.eventsPerSec,
      unit: "events/s",
      limit: `ProducerPerformance (${recordSize} B records, acks=all) ${
        fmtInt(perf.recordsPerSec)
      } rec/s, ${perf.mbPerSec.toFixed(1)} MB/s`,
      ratio: pct(r.eventsPerSec, perf.recordsPerSec),
      target: "≥ 150,000 events/s",
      pass: r.eventsPerSec >= 150_000,
    });
  }
  await ingestStages(b, events, topic);
}

/** Appends of one event each, `concurrency` at a time: rate, and latency of one append. */
async function concurrentAppends(
  append: (i: number) => Promise<void>,
  total: number,
  concurrency: number,
) {
  const times: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < total; i += concurrency) {
    await Promise.all(Array.from({ length: concurrency }, async (_, j) => {
      const t = performance.now();
      await append(i + j);
      times.push(performance.now() - t);
    }));
  }
  return { perSec: perSec(total, performance.now() - t0), ...percentiles(times) };
}

/**
 * Item 1's path one stage at a time: the app served by `Deno.serve` with a log that confirms at
 * once (`app_server.ts`: HTTP + Hono + body + validation, no durability), then each durable log
 * alone in this process with 50 single-event appends in flight, as 50 connections make them.
 */
async function singleStages(
  b: Bench,
  events: readonly ClientEvent[],
  topic: string,
  single: WrkRequest[],
  bareRps: number,
) {
  const logger = createLogger({ level: "error" });
  const port = freePort();
  const server = spawnDeno("bench/app_server.ts", [String(port)], {});
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/health`);
  const served = await load(
    url,
    single,
    { connections: SINGLE_CONNECTIONS, seconds: pick(b, 10, 3) },
    pick(b, 3, 1),
  );
  await server.stop();

  const { envelopes, encoded } = gatewayRecords(events.slice(0, 2_000));
  const dir = await tempDir("wal_alone");
  const wal = await Wal.open(dir, {
    maxBatch: DEFAULTS.GROUP_COMMIT_MAX_EVENTS,
    maxPending: DEFAULTS.INGEST_MAX_PENDING_EVENTS,
  });
  const walAlone = await concurrentAppends(
    (i) => wal.append([encoded[i % encoded.length]!]),
    pick(b, 40_000, 5_000),
    SINGLE_CONNECTIONS,
  );
  await wal.close();

  const kafkaLog = await KafkaEventLog.connect(
    createKafka({
      brokers: BROKERS.split(","),
      clientId: "bench",
      connectionTimeoutMs: 5000,
      logger,
    }),
    {
      topic,
      maxBatch: DEFAULTS.GROUP_COMMIT_MAX_EVENTS,
      maxPending: DEFAULTS.INGEST_MAX_PENDING_EVENTS,
    },
  );
  const kafkaAlone = await concurrentAppends(
    (i) => kafkaLog.append([envelopes[i % envelopes.length]!]),
    pick(b, 20_000, 3_000),
    SINGLE_CONNECTIONS,
  );
  await kafkaLog.close();
  b.report.details.single_stages = {
    app_served: served,
    wal_alone: walAlone,
    kafka_alone: kafkaAlone,
  };
  const line = (r: typeof walAlone) =>
    `${fmtInt(r.perSec)}/s (p50 ${fmtMs(r.p50)} / p99 ${fmtMs(r.p99)} ms)`;
  const servedRps = okRps(served);
  b.report.limitedBy(
    "1",
    `the app alone (bench/app_server.ts: Deno.serve + Hono + body + validation, a log that ` +
      `confirms at once) ${fmtInt(servedRps)} req/s, ${pct(servedRps, bareRps)} of bare, p99 ${
        fmtMs(served.latencyMs.p99)
      } ms; in this process with ${SINGLE_CONNECTIONS} single-event appends in flight: the WAL ` +
      `alone (group commit + fdatasync) ${line(walAlone)}; KafkaEventLog alone (acks=all) ` +
      `${line(kafkaAlone)}.`,
  );
}

/**
 * The gateway's Kafka path one stage at a time, in this process: body parse + validation +
 * encoding (the JavaScript work of a request), and the kafkajs producer alone.
 */
async function ingestStages(b: Bench, events: readonly ClientEvent[], topic: string) {
  const bodies = batchRequests(events, 1000, false).map((r) => new TextEncoder().encode(r.body!));
  const rounds = pick(b, 20, 3);
  let n = 0;
  const t0 = performance.now();
  for (let round = 0; round < rounds; round++) {
    for (const bytes of bodies) {
      const items = parseBody(decodeUtf8(bytes), false, LIMITS);
      const now = Date.now();
      for (const item of items) {
        if (!item.ok) continue;
        const r = validateEvent(item.value, {
          receivedAtMs: now,
          trustReceivedAt: false,
          source: "http",
          eventId: () => crypto.randomUUID(),
        }, VALIDATION);
        if (r.ok) (encodeEnvelope(r.event), n++);
      }
    }
  }
  const parseRate = perSec(n, performance.now() - t0);

  // kafkajs alone: the gateway's producer settings, one group commit (10,000 events) at a time.
  const { envelopes, encoded } = gatewayRecords(events);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const total = pick(b, 1_000_000, 100_000);
  // Not GROUP_COMMIT_MAX_EVENTS (10,000): at ~370 B a record, 10,000 records put ~1.2 MB in each
  // of 3 partitions' record batches, over the broker's message.max.bytes (1 MB), and the broker
  // refuses the produce. 2,000 records is ~250 KB a partition.
  const batch = 2_000;
  let sent = 0;
  const t1 = performance.now();
  try {
    while (sent < total) {
      const messages = [];
      for (let i = 0; i < batch; i++) {
        const k = (sent + i) % envelopes.length;
        messages.push({ key: envelopes[k]!.user_id, value: Buffer.from(encoded[k]!) });
      }
      await producer.send({ topic, acks: -1, messages });
      sent += batch;
    }
  } finally {
    await producer.disconnect();
  }
  const kafkajsRate = perSec(sent, performance.now() - t1);
  b.report.details.ingest_stages = {
    parse_validate_encode_per_s: parseRate,
    kafkajs_per_s: kafkajsRate,
  };
  b.report.limitedBy(
    "2",
    `body parse + validation + encoding alone: ${fmtInt(parseRate)} events/s (one thread); ` +
      `kafkajs producer alone (idempotent, acks=all, ${fmtInt(batch)}-message sends): ` +
      `${fmtInt(kafkajsRate)} events/s. The gateway does both on one thread, so it cannot beat ` +
      `1/(1/a + 1/b) = ${fmtInt(1 / (1 / parseRate + 1 / kafkajsRate))} events/s.`,
  );
}

let logReader: LakeEngine | undefined;

/** Offsets of a log's partitions that are in bronze: the `txn` versions of its Delta log. */
export async function lakeRows(lakeDir: string, topic: string, partitions: number) {
  if (!logReader) {
    const engine = logReader = new LakeEngine();
    onCleanup("the bronze log reader's engine", () => engine.close());
  }
  let store: LocalStore;
  try {
    store = await LocalStore.open(lakeDir, { create: false });
  } catch {
    return 0; // nothing written yet
  }
  const snapshot = await new Lake(store, logReader).bronze.snapshot();
  let rows = 0;
  for (let p = 0; p < partitions; p++) rows += snapshot.txn(`${topic}+${p}`) + 1;
  return rows;
}

/** Item 7's overload: the embedded mode fed batches faster than its lake writes them. */
export async function benchOverload(b: Bench): Promise<void> {
  const seconds = pick(b, 60, 8);
  const events = clientEvents(pick(b, 20_000, 4_000), 11);
  const reqs = batchRequests(events, 1000, false);
  const dir = await tempDir("overload");
  const gw: Gateway = await startMain(dataDirs(dir));
  const rss = await RssSampler.start(gw.pid, 1000);
  const lake: [number, number][] = [];
  const t0 = performance.now();
  const watch = setInterval(async () => {
    const t = Math.round((performance.now() - t0) / 1000);
    lake.push([t, await lakeRows(join(dir, "lake"), "wal", 1)]);
  }, 5000);
  const r = await runWrk(gw.url, reqs, {
    connections: BATCH_CONNECTIONS,
    seconds,
    countStatus: true,
    timeoutSeconds: 15,
  });
  clearInterval(watch);
  const mem = await rss.stop();
  const inLake = await lakeRows(join(dir, "lake"), "wal", 1);
  await stopGateway(b, "overload", gw);
  const accepted = (r.codes["202"] ?? 0) * 1000;
  const pushback = Object.entries(r.codes).filter(([c]) => c === "503" || c === "429");
  // Bounded: the last third of the run does not keep climbing above the middle third.
  const third = (k: number) =>
    mem.samples.filter(([t]) => t >= (k * seconds) / 3 && t < ((k + 1) * seconds) / 3)
      .map(([, mb]) => mb);
  const mid = Math.max(0, ...third(1)), end = Math.max(0, ...third(2));
  const bounded = mem.peakMb < RSS_TARGET_MB && end <= mid * 1.1 + 20;
  b.report.details.overload = {
    wrk: r,
    rss: mem,
    lake_rows_over_time: lake,
    accepted,
    in_lake: inLake,
  };
  b.report.add({
    id: "7c",
    what: `Peak RSS: embedded gateway under overload (1000-event batches, ${BATCH_CONNECTIONS} ` +
      `connections, ${seconds} s)`,
    figure: `${fmtMb(mem.peakMb)}; max RSS middle third ${fmtMb(mid)}, last third ${fmtMb(end)}`,
    value: mem.peakMb,
    unit: "MB",
    target: `< ${RSS_TARGET_MB} MB, bounded`,
    pass: bounded,
  });
  b.report.add({
    id: "7d",
    what: "… pushback under overload",
    figure: pushback.length > 0
      ? pushback.map(([c, n]) => `${fmtInt(n)}× ${c}`).join(", ") +
        ` of ${fmtInt(r.requests)} requests`
      : `none: all ${fmtInt(r.requests)} requests answered ${Object.keys(r.codes).join("/")}`,
    value: pushback.reduce((a, [, n]) => a + n, 0),
    unit: "responses",
    limit: `accepted ${fmtInt(accepted / r.seconds)} events/s; lake wrote ${
      fmtInt(inLake / r.seconds)
    } events/s; ${fmtInt(accepted - inLake)} behind at the end`,
    target: "503/429 before memory grows",
  });
}
