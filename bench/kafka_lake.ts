/**
 * Item 3: Kafka → bronze Parquet, end to end, with validation and rule scoring on (in-memory
 * windows): a `ROLE=worker` process on a pre-filled topic, its sustained rate and consumer lag over
 * time, beside Kafka's ConsumerPerformance on the same topic and DuckDB-wasm writing the same rows
 * from memory (`BronzeWriter`, the lake-write limit). The worker's stages are also timed alone in
 * this process, on the same records: the kafkajs consumer, parse + validation, scoring.
 *
 * @module
 */
import { LocalStore } from "../lake/storage/local.ts";
import { join } from "node:path";
import { BronzeWriter } from "../lake/bronze.ts";
import { LakeEngine } from "../lake/engine/engine.ts";
import { fraudThresholds } from "../config.ts";
import { AlertPipeline } from "../pipeline/fraud/alert_pipeline.ts";
import { FraudProcessor } from "../pipeline/fraud/processor.ts";
import { FraudDetector } from "../pipeline/fraud/detector.ts";
import { MemoryWindowStore } from "../pipeline/fraud/windows.ts";
import { createLogger } from "../shared/logger.ts";
import type { Envelope } from "../shared/schemas.ts";
import { validateEvent } from "../pipeline/validate.ts";
import { type Bench, perSec, pick, stopGateway } from "./lib/context.ts";
import { clientEvents, DEFAULTS, meanBytes, VALIDATION } from "./lib/events.ts";
import { lakeRows, memoryRow } from "./http_ingest.ts";
import { RssSampler, sleep, tempDir } from "./lib/proc.ts";
import { fmtInt, pct } from "./lib/report.ts";
import {
  bareConsumer,
  consumerPerf,
  createTopics,
  LagProbe,
  prefillTopic,
  startKafkaWorker,
} from "./lib/services.ts";
import { Lake } from "../lake/lake.ts";

const PARTITIONS = 3;
const TARGET = 60_000;

export async function benchKafkaLake(b: Bench): Promise<void> {
  const seconds = pick(b, 60, 8);
  const total = pick(b, 4_000_000, 150_000);
  const id = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const topic = `${id}-events`;
  await createTopics([[topic, PARTITIONS], [`${id}-dlq`, 1], [`${id}-alerts`, 1]]);

  // The topic holds what the gateway produces (envelopes with received_at), drawn at random from
  // a pool of distinct events.
  const dir = await tempDir("kafka_lake");
  const { fill, envelopes, encoded } = await prefillTopic(
    topic,
    total,
    clientEvents(pick(b, 100_000, 20_000), 3),
  );
  b.report.details.kafka_lake_prefill = fill;
  console.error(`bench: 3 pre-filled ${fmtInt(total)} records (${fmtInt(fill.recordsPerSec)}/s)`);

  // The product: a worker consuming the topic into bronze, scoring every event.
  const lakeDir = join(dir, "lake");
  const group = `${id}-group`;
  const probe = new LagProbe(group, topic);
  await probe.connect();
  const worker = await startKafkaWorker(id, topic, lakeDir);
  const rss = await RssSampler.start(worker.pid);
  const samples: { t: number; lag: number; committed: number; lake: number }[] = [];
  const t0 = performance.now();
  let start: { t: number; lake: number } | undefined;
  for (;;) {
    await sleep(pick(b, 1000, 500));
    const t = (performance.now() - t0) / 1000;
    const [pos, lake] = await Promise.all([probe.read(), lakeRows(lakeDir, topic, PARTITIONS)]);
    samples.push({ t: Math.round(t * 10) / 10, lag: pos.lag, committed: pos.committed, lake });
    if (!start && lake > 0) start = { t, lake };
    if (start && (t - start.t >= seconds || lake >= total)) break;
    if (!start && t > 120) throw new Error("The worker wrote nothing to the lake in 120 s");
  }
  const end = samples.at(-1)!;
  const mem = await rss.stop();
  await stopGateway(b, "kafka_worker", worker);
  await probe.close();
  const window = end.t - start!.t;
  const rate = (end.lake - start!.lake) / window;
  const files = await countFiles(join(lakeDir, "bronze"));
  b.report.details.kafka_lake = {
    records: total,
    window_s: window,
    first_rows_after_s: start!.t,
    events_per_s: rate,
    bronze_files: files,
    rows_per_file: end.lake / Math.max(1, files),
    lag_samples: samples,
    rss: mem,
  };

  // The limits, on the same topic and the same rows.
  const cperf = await consumerPerf(topic, total);
  b.report.details.consumer_performance = cperf;
  const bronzeRate = await bronzeLimit(b, envelopes, join(dir, "limit_lake"));
  b.report.add({
    id: "3a",
    what:
      `Kafka → bronze Parquet (ROLE=worker, validation + rules on, ${PARTITIONS} partitions), ` +
      `sustained over ${Math.round(window)} s`,
    figure: `${fmtInt(rate)} events/s (lag ${fmtInt(samples[0]!.lag)} → ${fmtInt(end.lag)})`,
    value: rate,
    unit: "events/s",
    limit: `ConsumerPerformance ${fmtInt(cperf.fetchRecordsPerSec)} rec/s; BronzeWriter from ` +
      `memory ${fmtInt(bronzeRate)} rows/s`,
    ratio: `${pct(rate, cperf.fetchRecordsPerSec)} / ${pct(rate, bronzeRate)}`,
    target: "≥ 60,000 events/s",
    pass: rate >= TARGET,
  });
  memoryRow(b, "7e", "worker (ROLE=worker) during 3", mem);
  await workerStages(b, topic, total, encoded, bronzeRate);
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) n += await countFiles(join(dir, e.name));
    else if (e.name.endsWith(".parquet")) n++;
  }
  return n;
}

/**
 * DuckDB-wasm writing the same rows from memory through `BronzeWriter`, in batches of
 * `LAKE_FLUSH_ROWS` (one log partition, contiguous offsets): the fastest the lake can take them.
 * Twice: with one engine throughout (as the gateway runs it), and recycling the engine every
 * 500,000 rows; this process' RSS growth over each shows what the engine keeps.
 */
async function bronzeLimit(b: Bench, envelopes: Envelope[], lakeDir: string): Promise<number> {
  const rows = pick(b, 1_000_000, 100_000);
  const batch = DEFAULTS.LAKE_FLUSH_ROWS;
  const recycleEvery = pick(b, 10, 1);
  const results: Record<string, { rows_per_s: number; rss_growth_mb: number }> = {};
  for (const recycle of [false, true]) {
    const engine = new LakeEngine();
    const writer = new BronzeWriter(
      engine,
      new Lake(await LocalStore.open(lakeDir), engine).bronze,
    );
    const topic = recycle ? "limit_recycled" : "limit";
    try {
      await writer.write({
        topic: `${topic}_warm`,
        partition: 0,
        firstOffset: 0,
        lastOffset: 999,
        rows: envelopes.slice(0, 1000).map((event, offset) => ({ offset, event })),
      });
      const rss0 = Deno.memoryUsage().rss;
      const t0 = performance.now();
      for (let first = 0, k = 1; first < rows; first += batch, k++) {
        const n = Math.min(batch, rows - first);
        const part = Array.from({ length: n }, (_, i) => ({
          offset: first + i,
          event: envelopes[(first + i) % envelopes.length]!,
        }));
        await writer.write({
          topic,
          partition: 0,
          firstOffset: first,
          lastOffset: first + n - 1,
          rows: part,
        });
        if (recycle && k % recycleEvery === 0) engine.recycle();
      }
      results[recycle ? "recycled" : "one_engine"] = {
        rows_per_s: perSec(rows, performance.now() - t0),
        rss_growth_mb: (Deno.memoryUsage().rss - rss0) / 1e6,
      };
    } finally {
      engine.close();
    }
  }
  const one = results.one_engine!, rec = results.recycled!;
  b.report.details.bronze_limit = { rows, batch, recycle_every_batches: recycleEvery, ...results };
  b.report.limitedBy(
    "7",
    `writing ${fmtInt(rows)} rows through BronzeWriter grew this process' RSS by ` +
      `${fmtInt(one.rss_growth_mb)} MB with one engine (${fmtInt(one.rows_per_s)} rows/s), by ` +
      `${fmtInt(rec.rss_growth_mb)} MB recycling the engine every ${
        fmtInt(recycleEvery * batch)
      } ` +
      `rows (${
        fmtInt(rec.rows_per_s)
      } rows/s): DuckDB-wasm keeps the memory of every Arrow insert.`,
  );
  return one.rows_per_s;
}

/** The worker's main-thread stages alone, on the records of the topic. */
async function workerStages(
  b: Bench,
  topic: string,
  total: number,
  encoded: Uint8Array[],
  bronzeRate: number,
): Promise<void> {
  // kafkajs: the worker's consumer settings, nothing done with the records.
  const consumer = await bareConsumer(topic, "bare");
  let seen = 0, first = 0;
  const limit = pick(b, 20, 4) * 1000;
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: PARTITIONS,
    eachBatch: ({ batch }) => {
      if (!first) first = performance.now();
      seen += batch.messages.length;
      return Promise.resolve();
    },
  });
  while (!first || (performance.now() - first < limit && seen < total)) await sleep(100);
  const kafkajsRate = perSec(seen, performance.now() - first);
  await consumer.disconnect();

  // JSON.parse + validation, as the loader does it (received_at from the record, trusted).
  const n = Math.min(encoded.length * 2, pick(b, 200_000, 40_000));
  const dec = new TextDecoder("utf-8", { fatal: true });
  const valid: Envelope[] = [];
  const now = Date.now();
  const t1 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = validateEvent(JSON.parse(dec.decode(encoded[i % encoded.length]!)), {
      receivedAtMs: now,
      trustReceivedAt: true,
      source: `kafka:${topic}`,
      eventId: () => crypto.randomUUID(),
    }, VALIDATION);
    if (r.ok && valid.length < n) valid.push(r.event);
  }
  const validateRate = perSec(n, performance.now() - t1);

  // Scoring, as the loader's processor does it: in-memory windows, chunks of 2000 records.
  const logger = createLogger({ level: "error" });
  const detector = new FraudDetector(new MemoryWindowStore(), {
    thresholds: fraudThresholds(DEFAULTS),
    cooldownMs: DEFAULTS.FRAUD_COOLDOWN_MS,
  });
  const processor = new FraudProcessor(detector, new AlertPipeline(undefined, [], logger));
  const t2 = performance.now();
  for (let i = 0; i < valid.length; i += 2000) {
    const { settled } = await processor.process(valid.slice(i, i + 2000));
    await settled;
  }
  const scoreRate = perSec(valid.length, performance.now() - t2);
  const mainThread = 1 / (1 / kafkajsRate + 1 / validateRate + 1 / scoreRate);
  b.report.details.worker_stages = {
    kafkajs_per_s: kafkajsRate,
    parse_validate_per_s: validateRate,
    scoring_per_s: scoreRate,
    bronze_write_per_s: bronzeRate,
    main_thread_bound_per_s: mainThread,
    record_bytes: meanBytes(encoded),
  };
  b.report.limitedBy(
    "3",
    `alone, one thread each: kafkajs consumer ${fmtInt(kafkajsRate)} rec/s, JSON.parse + ` +
      `validation ${fmtInt(validateRate)}/s, rule scoring (memory windows) ${
        fmtInt(scoreRate)
      }/s ` +
      `→ main thread bound ${fmtInt(mainThread)}/s; DuckDB-wasm bronze write (its own worker ` +
      `thread) ${fmtInt(bronzeRate)} rows/s.`,
  );
}
