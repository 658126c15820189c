/**
 * Item 11: how Kafka → bronze scales with cores. The same pre-filled topic is consumed twice by a
 * fresh `ROLE=worker` process (its own group, its own lake), once with every thread of the worker
 * pinned to one core and once to both (`taskset -a -p`, applied before it consumes anything;
 * threads it starts later inherit the mask). No load generator runs meanwhile: the only other
 * work on the cores is the broker serving fetches and this process polling the lake every second.
 *
 * Beside each rate: the worker's CPU per event and where its CPU went, thread by thread (from
 * `/proc/<pid>/task/<tid>/stat`): the main thread (kafkajs, validation, scoring, bronze columns),
 * the DuckDB engine workers, V8's helper threads. A thread near 100% of a core is the bound.
 *
 * @module
 */
import { type Bench, pick, stopGateway } from "./lib/context.ts";
import { clientEvents } from "./lib/events.ts";
import { lakeRows } from "./http_ingest.ts";
import { CLK_TCK, CpuMeter, RssSampler, run, sleep, statTicks, tempDir } from "./lib/proc.ts";
import { fmtInt } from "./lib/report.ts";
import { createTopics, prefillTopic, startKafkaWorker } from "./lib/services.ts";
import { join } from "node:path";

const PARTITIONS = 3;
const TARGET = 1.7;

/** One pinned run. */
export interface PinnedRun {
  cpus: string;
  events: number;
  seconds: number;
  eventsPerSec: number;
  usPerEvent: number;
  peakRssMb: number;
  /** CPU seconds of each busy thread over the window, largest first (share of the window in %). */
  threads: { name: string; cpuSeconds: number; percentOfWindow: number }[];
}

export async function benchScaling(b: Bench): Promise<void> {
  const seconds = pick(b, 40, 6);
  const total = pick(b, 3_000_000, 600_000);
  const id = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const topic = `${id}-events`;
  await createTopics([[topic, PARTITIONS]]);
  await prefillTopic(topic, total, clientEvents(pick(b, 100_000, 20_000), 5));
  console.error(`bench: 11 pre-filled ${fmtInt(total)} records`);

  const runs: PinnedRun[] = [];
  for (const cpus of ["0", "0,1"]) {
    runs.push(await pinnedRun(b, `${id}-c${cpus.length}`, topic, cpus, seconds, total));
    const r = runs.at(-1)!;
    console.error(
      `bench: 11 cpus ${cpus}: ${fmtInt(r.eventsPerSec)} events/s, ${
        r.usPerEvent.toFixed(1)
      } µs/event`,
    );
  }
  const [one, two] = runs as [PinnedRun, PinnedRun];
  const gain = two.eventsPerSec / Math.max(1, one.eventsPerSec);
  b.report.details.scaling = { records: total, runs };
  const top = (r: PinnedRun) =>
    r.threads.slice(0, 3).map((t) => `${t.name} ${t.percentOfWindow.toFixed(0)}%`).join(", ");
  b.report.add({
    id: "11",
    what: `Kafka → bronze (ROLE=worker, rules on) pinned to 1 core, then 2 (taskset), ` +
      `${PARTITIONS} partitions, ${seconds} s each, nothing else loading the cores`,
    figure:
      `1 core ${fmtInt(one.eventsPerSec)} events/s (${one.usPerEvent.toFixed(0)} µs/event); ` +
      `2 cores ${fmtInt(two.eventsPerSec)} events/s (${two.usPerEvent.toFixed(0)} µs/event)`,
    value: gain,
    unit: "×",
    limit: `busiest threads on 2 cores: ${top(two)}`,
    ratio: `${gain.toFixed(2)}×`,
    target: `2 cores ≥ ${TARGET}× 1 core`,
    pass: gain >= TARGET,
  });
  if (gain < TARGET) {
    b.report.limitedBy(
      "11",
      `on 2 cores the worker's busiest threads were ${top(two)} of the window; on 1 core ${
        top(one)
      }.`,
    );
  }
}

async function pinnedRun(
  b: Bench,
  id: string,
  topic: string,
  cpus: string,
  seconds: number,
  total: number,
): Promise<PinnedRun> {
  await createTopics([[`${id}-dlq`, 1], [`${id}-alerts`, 1]]);
  const lakeDir = join(await tempDir("scaling"), "lake");
  const worker = await startKafkaWorker(id, topic, lakeDir);
  await run("taskset", ["-a", "-p", "-c", cpus, String(worker.pid)]);
  const rss = await RssSampler.start(worker.pid);
  let start: { t: number; rows: number; cpu: CpuMeter; threads: Map<number, Thread> } | undefined;
  let rows = 0, t = 0;
  const t0 = performance.now();
  for (;;) {
    await sleep(1000);
    t = (performance.now() - t0) / 1000;
    rows = await lakeRows(lakeDir, topic, PARTITIONS);
    if (!start && rows > 0 && rows < total) {
      start = {
        t,
        rows,
        cpu: await CpuMeter.start(worker.pid),
        threads: await threadCpu(worker.pid),
      };
    }
    if (start && t > start.t && (t - start.t >= seconds || rows >= total)) break;
    if (!start && (t > 120 || rows >= total)) {
      throw new Error(`The worker wrote ${rows} rows in ${t.toFixed(0)} s: nothing to time`);
    }
  }
  const window = t - start!.t;
  const events = rows - start!.rows;
  const used = await start!.cpu.seconds();
  const after = await threadCpu(worker.pid);
  const { peakMb } = await rss.stop();
  await stopGateway(b, `scaling_worker_${cpus}`, worker);
  return {
    cpus,
    events,
    seconds: window,
    eventsPerSec: events / window,
    usPerEvent: events > 0 ? (used * 1e6) / events : 0,
    peakRssMb: peakMb,
    threads: perThread(start!.threads, after, window),
  };
}

/** A thread's command name and CPU ticks. */
type Thread = ReturnType<typeof statTicks>;

/** CPU ticks (user + system) of each thread of a process, by thread id. */
async function threadCpu(pid: number): Promise<Map<number, Thread>> {
  const out = new Map<number, Thread>();
  for await (const e of Deno.readDir(`/proc/${pid}/task`)) {
    const text = await Deno.readTextFile(`/proc/${pid}/task/${e.name}/stat`).catch(() => "");
    if (!text) continue;
    out.set(Number(e.name), statTicks(text));
  }
  return out;
}

/** CPU over the window of each thread that used any ("main" is the JavaScript main thread). */
function perThread(before: Map<number, Thread>, after: Map<number, Thread>, window: number) {
  const mainTid = Math.min(...after.keys());
  return [...after].map(([tid, t]) => {
    const cpuSeconds = (t.ticks - (before.get(tid)?.ticks ?? 0)) / CLK_TCK;
    const name = tid === mainTid ? "main" : `${t.name}#${tid - mainTid}`;
    return { name, cpuSeconds, percentOfWindow: (100 * cpuSeconds) / window };
  }).filter((t) => t.cpuSeconds > 0).sort((x, y) => y.cpuSeconds - x.cpuSeconds);
}
