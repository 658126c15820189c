/**
 * The lake loader alone, in this process, for A/B runs of `pipeline/lake_loader.ts`: 3 partitions
 * fed the way kafkajs does (a fetch round hands each partition up to 12,000 records, handled in
 * chunks of 2000, and the next round waits for all three), rule scoring on, a real `BronzeWriter`
 * (DuckDB-wasm) on a local temporary lake, the worker's flush settings. No Kafka and no other
 * process: what changes between versions is the loader.
 *
 *   deno run -A bench/loader_ab.ts [events]   # prints one JSON line
 *
 * @module
 */
import { LocalStore } from "../lake/storage/local.ts";
import { BronzeWriter } from "../lake/bronze.ts";
import { LakeEngine } from "../lake/engine/engine.ts";
import { Lake } from "../lake/lake.ts";
import { LakeLoader } from "../pipeline/lake_loader.ts";
import { fraudThresholds } from "../config.ts";
import { AlertPipeline } from "../pipeline/fraud/alert_pipeline.ts";
import { FraudProcessor } from "../pipeline/fraud/processor.ts";
import { FraudDetector } from "../pipeline/fraud/detector.ts";
import { MemoryWindowStore } from "../pipeline/fraud/windows.ts";
import { createLogger } from "../shared/logger.ts";
import type { LogRecord } from "../pipeline/durable_log.ts";
import { clientEvents, DEFAULTS, gatewayRecords, VALIDATION } from "./lib/events.ts";
import { CLK_TCK, cpuSeconds, statTicks } from "./lib/proc.ts";

const PARTITIONS = 3, FETCH = 12_000, CHUNK = Number(Deno.env.get("CHUNK") ?? 2000);

/** CPU seconds of this process' main thread. */
function mainThreadSeconds(): number {
  const stat = Deno.readTextFileSync(`/proc/${Deno.pid}/task/${Deno.pid}/stat`);
  return statTicks(stat).ticks / CLK_TCK;
}

function loaderOn(engine: LakeEngine, store: LocalStore): LakeLoader {
  const detector = new FraudDetector(new MemoryWindowStore(), {
    thresholds: fraudThresholds(DEFAULTS),
    cooldownMs: DEFAULTS.FRAUD_COOLDOWN_MS,
  });
  const alerts = new AlertPipeline(undefined, [], createLogger({ level: "error" }));
  return new LakeLoader(
    new BronzeWriter(engine, new Lake(store, engine).bronze),
    { send: () => Promise.resolve(), close: () => Promise.resolve() },
    {
      validation: VALIDATION,
      processor: new FraudProcessor(detector, alerts),
      flushRows: DEFAULTS.LAKE_FLUSH_ROWS,
      flushBytes: DEFAULTS.LAKE_FLUSH_BYTES,
      flushIntervalMs: DEFAULTS.LAKE_FLUSH_INTERVAL_MS,
      commit: () => Promise.resolve(),
      onError: (err) => console.error(err),
    },
  );
}

/** Feeds `perPartition` records to each partition, round by round; resolves when they are in. */
async function feed(loader: LakeLoader, values: Uint8Array[], perPartition: number) {
  const next = new Array<number>(PARTITIONS).fill(0);
  while (next.some((n) => n < perPartition)) {
    await Promise.all(next.map(async (from, p) => {
      const end = Math.min(perPartition, from + FETCH);
      next[p] = end;
      const batch: LogRecord[] = [];
      for (let o = from; o < end; o++) {
        const value = values[(o * 7 + p) % values.length]!;
        batch.push({ topic: "t", partition: p, offset: o, timestampMs: Date.now(), value });
      }
      for (let i = 0; i < batch.length; i += CHUNK) {
        await loader.handle(batch.slice(i, i + CHUNK), () => Promise.resolve());
      }
    }));
  }
  await loader.close();
}

const perPartition = Math.floor(Number(Deno.args[0] ?? 600_000) / PARTITIONS);
const { encoded } = gatewayRecords(clientEvents(100_000, 3));
const dir = await Deno.makeTempDir({ prefix: "loader_ab" });
const engine = new LakeEngine({ recycleAfterRows: DEFAULTS.LAKE_WRITER_RECYCLE_ROWS });
try {
  const loader = loaderOn(engine, await LocalStore.open(dir, { create: true }));
  const m0 = mainThreadSeconds(), c0 = await cpuSeconds(), t0 = performance.now();
  await feed(loader, encoded, perPartition);
  const seconds = (performance.now() - t0) / 1000, events = perPartition * PARTITIONS;
  console.log(JSON.stringify({
    events,
    events_per_s: Math.round(events / seconds),
    cpu_us_per_event: +(((await cpuSeconds()) - c0) * 1e6 / events).toFixed(1),
    main_thread_busy: +((mainThreadSeconds() - m0) / seconds).toFixed(2),
    flushes: loader.stats.flushes,
    rows_written: loader.stats.rowsWritten,
    load: Deno.loadavg()[0],
  }));
} finally {
  engine.close();
  await Deno.remove(dir, { recursive: true });
}
