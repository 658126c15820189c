/**
 * Item 8: how long after its 2xx an event can be read back from bronze — what "visible as bronze
 * Parquet within the flush interval" means to a user.
 *
 * One gateway in `ROLE=all` (it ingests, loads the lake and answers the query API), embedded
 * (WAL) and with Kafka. A client posts one event at a time at a light rate, each with its own
 * user id, and polls `GET /events?user_id=…` every 25 ms until the event is there. The figure is
 * the time from the 2xx to the first answer that holds it: the flush interval plus the Parquet
 * write, plus the consumer's fetch in Kafka mode, plus up to one poll.
 *
 * @module
 */
import { type Bench, percentiles, pick, stopGateway } from "./lib/context.ts";
import { DEFAULTS } from "./lib/events.ts";
import { dataDirs, sleep, startMain, tempDir } from "./lib/proc.ts";
import { fmtMs } from "./lib/report.ts";
import { BROKERS, createTopics } from "./lib/services.ts";

const POLL_MS = 25;
const GIVE_UP_MS = 60_000;

/** Posts one event for a fresh user and returns the ms from its 2xx until a query returns it. */
async function oneEvent(url: string, run: string, i: number): Promise<number> {
  const user = `fresh-${run}-${i}`;
  const res = await fetch(`${url}/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      type: "page_view",
      user_id: user,
      occurred_at: new Date().toISOString(),
      payload: { page: "/bench/freshness" },
    }),
  });
  const answer = await res.text();
  if (res.status !== 202) throw new Error(`POST /events answered ${res.status}: ${answer}`);
  const acked = performance.now();
  const query = `${url}/events?user_id=${encodeURIComponent(user)}`;
  while (performance.now() - acked < GIVE_UP_MS) {
    const r = await fetch(query);
    if (!r.ok) throw new Error(`GET /events answered ${r.status}: ${await r.text()}`);
    const { events } = await r.json() as { events: unknown[] };
    if (events.length > 0) return performance.now() - acked;
    await sleep(POLL_MS);
  }
  throw new Error(`event of ${user} not in bronze ${GIVE_UP_MS} ms after its 2xx`);
}

/** Item 8, embedded and Kafka. */
export async function benchFreshness(b: Bench): Promise<void> {
  const count = pick(b, 20, 4);
  const flushMs = DEFAULTS.LAKE_FLUSH_INTERVAL_MS;
  const run = crypto.randomUUID().slice(0, 8);
  const modes: [string, string, () => Promise<Record<string, string>>][] = [
    ["8a", "embedded (WAL)", async () => dataDirs(await tempDir("freshness"))],
    ["8b", "Kafka (HTTP → topic → consumer → bronze)", async () => {
      const topic = `bench-${run}-fresh`;
      await createTopics([[topic, 3], [`${topic}-dlq`, 1]]);
      return {
        KAFKA_BROKERS: BROKERS,
        KAFKA_TOPIC_EVENTS: topic,
        KAFKA_TOPIC_DEAD_LETTER: `${topic}-dlq`,
        KAFKA_GROUP_ID: `bench-${run}-fresh`,
        ...dataDirs(await tempDir("freshness_kafka")),
      };
    }],
  ];
  for (const [id, mode, env] of modes) {
    const gw = await startMain({ ROLE: "all", ...await env() });
    const times: number[] = [];
    try {
      await oneEvent(gw.url, `${run}-warm-${id}`, 0); // first flush, engine start, group join
      for (let i = 0; i < count; i++) {
        times.push(await oneEvent(gw.url, `${run}-${id}`, i));
        await sleep(100 + Math.random() * 400); // land at different points of the flush timer
      }
    } finally {
      await stopGateway(b, `freshness_${id}`, gw);
    }
    const p = percentiles(times);
    const max = Math.max(...times);
    b.report.details[`freshness_${id}`] = { times_ms: times, ...p, max };
    b.report.add({
      id,
      what: `2xx → readable in bronze (GET /events), ${mode}, ${count} events`,
      figure: `p50 ${fmtMs(p.p50)} / max ${fmtMs(max)} ms`,
      value: max,
      unit: "ms",
      limit: `LAKE_FLUSH_INTERVAL_MS ${flushMs} ms + one ${POLL_MS} ms poll`,
      target: "max ≤ flush interval + 1 s",
      pass: max <= flushMs + 1000,
    });
  }
}
