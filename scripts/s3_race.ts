/**
 * Checks that an S3 server decides concurrent conditional creates atomically: in each round,
 * WRITERS callers `putIfAbsent` (PUT with `If-None-Match: *`) one new key with different bodies
 * at once; exactly one must win and the stored bytes must be the winner's. The lake's commit
 * protocol depends on it. Exits 1 on any violation.
 *
 *   deno run --allow-net --allow-env --allow-read --allow-write scripts/s3_race.ts [ROUNDS] [WRITERS] [BYTES]
 *
 * Defaults: 200 rounds, 8 writers, 64-byte bodies. The server and bucket come from
 * AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and S3_TEST_BUCKET,
 * with scripts/s3proxy.sh's defaults. It writes under race/<run id>/ and deletes what it wrote.
 *
 * @module
 */
import { openS3Store } from "../lake/storage/s3.ts";

const [rounds = 200, writers = 8, size = 64] = Deno.args.map(Number);
const env = (name: string) => Deno.env.get(name) || undefined;
const endpoint = env("AWS_ENDPOINT_URL_S3") ?? env("AWS_ENDPOINT_URL") ?? "http://127.0.0.1:9000";
const bucket = env("S3_TEST_BUCKET") ?? "streamgate-test";
const run = `race/${Date.now().toString(36)}`;
const store = openS3Store(`s3://${bucket}/${run}`, {
  endpoint,
  region: env("AWS_REGION") ?? "us-east-1",
  accessKeyId: env("AWS_ACCESS_KEY_ID") ?? "streamgate",
  secretAccessKey: env("AWS_SECRET_ACCESS_KEY") ?? "streamgate-secret-key",
  maxConcurrency: Math.max(8, writers),
});

/** Rounds by how many writers won them. */
const byWinners = new Map<number, number>();
let wrongBytes = 0;
const started = performance.now();
try {
  for (let round = 0; round < rounds; round++) {
    const key = `${round}.json`;
    const bodies = Array.from({ length: writers }, (_, w) => {
      const body = new Uint8Array(size).fill(65 + (w % 26));
      body.set(new TextEncoder().encode(`w${w} r${round} `).subarray(0, size));
      return body;
    });
    const won = await Promise.all(bodies.map((body) => store.putIfAbsent(key, body)));
    const winners = won.flatMap((w, i) => w ? [i] : []);
    byWinners.set(winners.length, (byWinners.get(winners.length) ?? 0) + 1);
    const stored = await store.get(key);
    const winner = bodies[winners[0] ?? -1];
    if (winners.length === 1 && !(stored && winner && stored.every((b, i) => b === winner[i]))) {
      wrongBytes++;
    }
  }
} finally {
  for await (const info of store.list("")) await store.delete(info.key);
  await store.close();
}
const seconds = ((performance.now() - started) / 1000).toFixed(1);
const violations = rounds - (byWinners.get(1) ?? 0) + wrongBytes;
console.log(JSON.stringify({
  endpoint,
  rounds,
  writers,
  bytes: size,
  roundsByWinners: Object.fromEntries([...byWinners].sort((a, b) => a[0] - b[0])),
  wrongBytes,
  violations,
  seconds: Number(seconds),
}));
if (violations > 0) Deno.exit(1);
