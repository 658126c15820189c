/**
 * Item 10: the lake on S3-compatible object storage (s3proxy on this machine, `scripts/s3proxy.sh`)
 * beside the same lake on local disk, measured in the same run, in this process:
 * - bronze throughput: `BronzeWriter` batches of three log partitions at once, as a worker's
 *   flushes go (Parquet from DuckDB-wasm, the puts, the Delta commits with their `txn`);
 * - query latency: `LakeQuery` (the query API without HTTP) on the table just written, p50 / p99
 *   of `events` for one user and of `stats` over the last 24 h, after a first query that fills
 *   the S3 store's local cache of data files (reported apart).
 *
 * @module
 */
import { join } from "node:path";
import { BronzeWriter } from "../lake/bronze.ts";
import { LakeEngine } from "../lake/engine/engine.ts";
import { Lake } from "../lake/lake.ts";
import { LakeQuery } from "../lake/query/query.ts";
import { LocalStore } from "../lake/storage/local.ts";
import { openS3Store } from "../lake/storage/s3.ts";
import type { ObjectStore } from "../lake/storage/store.ts";
import type { Envelope } from "../shared/schemas.ts";
import { type Bench, percentiles, perSec, pick } from "./lib/context.ts";
import { clientEvents, gatewayRecords } from "./lib/events.ts";
import { tempDir } from "./lib/proc.ts";
import { fmtInt, fmtMs, pct } from "./lib/report.ts";
import { ensureS3proxy, S3 } from "./lib/services.ts";

const PARTITIONS = 3;
const TOPIC = "bench-events";

interface StoreFigures {
  rowsPerSec: number;
  commits: number;
  firstQueryMs: number;
  events: { p50: number; p99: number };
  stats: { p50: number; p99: number };
}

export async function benchObjectStore(b: Bench): Promise<void> {
  await ensureS3proxy();
  const rows = pick(b, 100_000, 30_000);
  const batchRows = pick(b, 5_000, 2_000);
  const queries = pick(b, 60, 10);
  const { envelopes } = gatewayRecords(clientEvents(pick(b, 50_000, 10_000), 9));
  const dir = await tempDir("object_store");
  const prefix = `bench/${crypto.randomUUID()}`;
  const stores: [string, () => Promise<ObjectStore>][] = [
    ["disk", () => LocalStore.open(join(dir, "lake"))],
    ["s3proxy", () =>
      Promise.resolve(openS3Store(`s3://${S3.bucket}/${prefix}`, {
        ...S3,
        cacheDir: join(dir, "cache"),
      }))],
  ];
  const figures: Record<string, StoreFigures> = {};
  for (const [name, open] of stores) {
    const store = await open();
    try {
      figures[name] = await measure(store, envelopes, { rows, batchRows, queries });
    } finally {
      if (name === "s3proxy") {
        for await (const o of store.list("")) await store.delete(o.key);
      }
      await store.close();
    }
    console.error(`bench: 10 ${name}: ${JSON.stringify(figures[name])}`);
  }
  b.report.details.object_store = { rows, batch_rows: batchRows, queries, ...figures };
  const disk = figures.disk!, s3 = figures.s3proxy!;
  b.report.add({
    id: "10a",
    what: `Bronze writes on s3proxy, ${fmtInt(rows)} rows in ${fmtInt(batchRows)}-row batches, ` +
      `${PARTITIONS} partitions at once`,
    figure: `${fmtInt(s3.rowsPerSec)} rows/s (${s3.commits} commits)`,
    value: s3.rowsPerSec,
    unit: "rows/s",
    limit: `local disk ${fmtInt(disk.rowsPerSec)} rows/s`,
    ratio: pct(s3.rowsPerSec, disk.rowsPerSec),
  });
  for (
    const [id, what, key] of [["10b", "events of one user", "events"], [
      "10c",
      "stats, 24 h",
      "stats",
    ]] as const
  ) {
    b.report.add({
      id,
      what: `Query (${what}) on s3proxy, ${fmtInt(rows)}-row bronze, cache warm`,
      figure: `p50 ${fmtMs(s3[key].p50)} / p99 ${fmtMs(s3[key].p99)} ms`,
      value: s3[key].p99,
      unit: "ms",
      limit: `local disk p50 ${fmtMs(disk[key].p50)} / p99 ${fmtMs(disk[key].p99)} ms`,
      ratio: pct(s3[key].p99, disk[key].p99),
    });
  }
  b.report.add({
    id: "10d",
    what: "First query on s3proxy (the data files fetched into the cache)",
    figure: `${fmtMs(s3.firstQueryMs)} ms`,
    value: s3.firstQueryMs,
    unit: "ms",
    limit: `local disk ${fmtMs(disk.firstQueryMs)} ms`,
  });
}

/** Writes `rows` bronze rows to a lake on `store`, then queries it. */
async function measure(
  store: ObjectStore,
  pool: Envelope[],
  o: { rows: number; batchRows: number; queries: number },
): Promise<StoreFigures> {
  const engine = new LakeEngine();
  const queryEngine = new LakeEngine();
  try {
    const lake = new Lake(store, engine);
    const writer = new BronzeWriter(engine, lake.bronze);
    const perPartition = Math.ceil(o.rows / PARTITIONS);
    let commits = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: PARTITIONS }, async (_, partition) => {
      for (let first = 0; first < perPartition; first += o.batchRows) {
        const last = Math.min(perPartition, first + o.batchRows) - 1;
        const rows = [];
        for (let offset = first; offset <= last; offset++) {
          const event = pool[(offset * PARTITIONS + partition) % pool.length]!;
          rows.push({ offset, event: { ...event, event_id: crypto.randomUUID() } });
        }
        await writer.write({ topic: TOPIC, partition, firstOffset: first, lastOffset: last, rows });
        commits++;
      }
    }));
    const rowsPerSec = perSec(perPartition * PARTITIONS, performance.now() - t0);

    const query = new LakeQuery(queryEngine, new Lake(store, queryEngine));
    const user = pool[0]!.user_id;
    const timed = async (fn: () => Promise<unknown>) => {
      const t = performance.now();
      await fn();
      return performance.now() - t;
    };
    const firstQueryMs = await timed(() => query.events({ user_id: user }));
    const events: number[] = [], stats: number[] = [];
    for (let i = 0; i < o.queries; i++) {
      events.push(await timed(() => query.events({ user_id: pool[i % pool.length]!.user_id })));
      stats.push(await timed(() => query.stats({})));
    }
    const p = (ms: number[]) => {
      const { p50, p99 } = percentiles(ms);
      return { p50, p99 };
    };
    return { rowsPerSec, commits, firstQueryMs, events: p(events), stats: p(stats) };
  } finally {
    engine.close();
    queryEngine.close();
  }
}
