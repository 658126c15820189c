/**
 * The Delta reader harness tests itself before the product writes any Delta table: Delta's Java
 * library writes a sample table (`scripts/delta_reader.sh write-sample`, see DeltaWriteSample)
 * that the harness must read back exactly, on local disk and on S3 (s3proxy), and tables it
 * cannot read must fail with the Java exception. It also reads Parquet files of the lake's own
 * DuckDB engine under a hand-written log.
 *
 * S3: the store named by AWS_ENDPOINT_URL_S3 (+ AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_REGION; bucket S3_TEST_BUCKET) when set, as scripts/test.sh sets them; else this file starts
 * its own s3proxy on a free port.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { LakeEngine } from "../lake/engine/engine.ts";
import { type DeltaSnapshot, readDeltaTable, runDeltaReader } from "./delta_reader.ts";

/** What DeltaWriteSample says the table holds (its own bookkeeping, not read back). */
interface SampleManifest {
  version: number;
  checkpointVersion: number;
  files: { path: string; partitionValues: Record<string, string>; rows: number }[];
  numFiles: number;
  rows: number;
  rowsByPartition: Record<string, number>;
  txn: Record<string, number>;
  eventIds: string[];
}

const TXN_APPS = ["streamgate-bronze", "streamgate-silver", "streamgate-gold"];
const COLUMNS = ["event_id", "log_topic", "log_partition", "log_offset", "occurred_at", "type"];
/** The sample's partition value with every character Hive escapes or a URL must encode. */
const AWKWARD_TYPE = "a b+c%d:e";

async function writeSample(uri: string, env: Record<string, string> = {}): Promise<SampleManifest> {
  const out = await runDeltaReader(["write-sample", uri], {
    env,
    action: `writing the sample table "${uri}"`,
  });
  return JSON.parse(out) as SampleManifest;
}

function read(uri: string, env: Record<string, string> = {}): Promise<DeltaSnapshot> {
  return readDeltaTable(uri, { txn: [...TXN_APPS, "never-committed"], columns: COLUMNS, env });
}

/** Everything the sample manifest promises, as Delta's reader saw it. */
function assertMatchesSample(table: DeltaSnapshot, sample: SampleManifest): void {
  assert.equal(table.version, sample.version);
  assert.deepEqual(table.protocol, { minReaderVersion: 1, minWriterVersion: 2 });
  assert.deepEqual(table.partitionColumns, ["dt", "type"]);
  assert.equal(table.configuration["delta.checkpointInterval"], "10");
  assert.deepEqual(
    table.schema.map((f) => `${f.name}:${f.type}`),
    [
      "event_id:string",
      "log_topic:string",
      "log_partition:int",
      "log_offset:bigint",
      "amount:double",
      "occurred_at:timestamp",
      "dt:string",
      "type:string",
    ],
  );
  // Live files: the compaction's and the delete's removes are applied.
  assert.equal(table.numFiles, sample.numFiles);
  assert.deepEqual(
    table.files.map((f) => [f.path, f.partitionValues]).sort(),
    sample.files.map((f) => [f.path, f.partitionValues]).sort(),
  );
  for (const file of table.files) {
    assert.equal(file.actualSize, file.size, `size of ${file.path}`);
    const rows = sample.files.find((f) => f.path === file.path)?.rows;
    if (file.numRecords !== null) assert.equal(file.numRecords, rows, `numRecords of ${file.path}`);
  }
  assert.ok(table.files.some((f) => f.numRecords === null), "some sample files have no stats");
  // Rows are read from the Parquet files, not summed from stats.
  assert.equal(table.rows, sample.rows);
  assert.deepEqual(table.rowsByPartition, sample.rowsByPartition);
  assert.deepEqual(table.txn, { ...sample.txn, "never-committed": -1 });

  assert.deepEqual(table.columns, COLUMNS);
  const values = table.values ?? [];
  assert.equal(values.length, sample.rows);
  const ids = values.map((v) => v[0] as string);
  assert.deepEqual([...ids].sort(), [...sample.eventIds].sort());
  const keys = new Set(values.map((v) => JSON.stringify(v.slice(1, 4))));
  assert.equal(keys.size, values.length, "(log_topic, log_partition, log_offset) is unique");
  const evt15 = values.find((v) => v[0] === "evt-15");
  assert.deepEqual(evt15, ["evt-15", "events", 0, 15, "2026-01-01T00:00:15Z", AWKWARD_TYPE]);
  assert.match(table.notes.join("\n"), /"occurred_at".*INT64/);
}

Deno.test("readDeltaTable() reads a local Delta table with checkpoint, removes and txn", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "delta_reader_" });
  try {
    const uri = join(root, "events");
    const sample = await writeSample(uri);

    await t.step("version, files, rows by partition, txn, values", async () => {
      const table = await read(uri);
      assertMatchesSample(table, sample);
      // The log really holds what the reader had to get right.
      const log = await Array.fromAsync(Deno.readDir(join(uri, "_delta_log")), (e) => e.name);
      assert.ok(log.includes("00000000000000000010.checkpoint.parquet"), log.join(" "));
      assert.ok(log.includes("_last_checkpoint"));
      const awkward = table.files.find((f) => f.partitionValues.type === AWKWARD_TYPE);
      assert.ok(awkward, "a file of the escaped partition");
      // Hive-escaped directory name ('%' -> %25, ':' -> %3A), then URL-encoded in the log.
      assert.match(awkward.path, /^dt=2026-01-01\/type=a b\+c%25d%3Ae\/part-/);
      assert.match(awkward.rawPath, /^dt=2026-01-01\/type=a%20b\+c%2525d%253Ae\/part-/);
      assert.ok((await Deno.stat(join(uri, awkward.path))).isFile);
      assert.ok(Object.keys(table.rowsByPartition).includes(`dt=2026-01-01/type=${AWKWARD_TYPE}`));
    });

    await t.step("the checkpoint alone, once commits 0-10 are gone", async () => {
      const copy = join(root, "checkpoint_only");
      await copyDir(uri, copy);
      for (let v = 0; v <= 10; v++) {
        const name = `${String(v).padStart(20, "0")}.json`;
        await Deno.remove(join(copy, "_delta_log", name));
        await Deno.remove(join(copy, "_delta_log", `.${name}.crc`)).catch(() => {});
      }
      const table = await read(copy);
      assertMatchesSample(table, sample);
      // streamgate-gold's only txn action was in commit 3: now only the checkpoint has it.
      assert.equal(table.txn?.["streamgate-gold"], 3);
    });

    await t.step("an unreadable table fails with the Java exception", async (t) => {
      await t.step("no _delta_log", async () => {
        const empty = join(root, "empty");
        await Deno.mkdir(empty);
        await assert.rejects(readDeltaTable(empty), /Not a Delta table: no commit found under/);
      });
      await t.step("a commit that is not JSON", async () => {
        const broken = join(root, "broken_commit");
        await copyDir(uri, broken);
        await Deno.writeTextFile(join(broken, "_delta_log", "00000000000000000015.json"), "{not");
        await Deno.remove(join(broken, "_delta_log", ".00000000000000000015.json.crc"));
        await assert.rejects(readDeltaTable(broken), /exit 1\).*JsonParseException/s);
      });
      await t.step("a data file that is gone", async () => {
        const missing = join(root, "missing_file");
        await copyDir(uri, missing);
        const victim = sample.files[0]!.path;
        await Deno.remove(join(missing, victim));
        await assert.rejects(
          readDeltaTable(missing),
          (err: Error) =>
            err.message.includes("FileNotFoundException") && err.message.includes(victim),
        );
      });
      await t.step("an add.path that was not URL-encoded", async () => {
        const raw = join(root, "unencoded_path");
        await copyDir(uri, raw);
        const last = join(raw, "_delta_log", "00000000000000000015.json");
        const text = await Deno.readTextFile(last);
        // A writer that forgot to encode: the log names "type=50%25%2Foff%3Dé" verbatim, which
        // a Delta reader decodes to "type=50%/off=é", a directory that does not exist.
        await Deno.writeTextFile(last, text.replaceAll("%25", "%"));
        await Deno.remove(join(raw, "_delta_log", ".00000000000000000015.json.crc"));
        await assert.rejects(readDeltaTable(raw), /FileNotFoundException.*type=50%\/off=é/);
      });
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("readDeltaTable() reads the lake engine's Parquet (DuckDB-wasm, ZSTD, INT64 timestamps)", async () => {
  // The product's data files come from LakeEngine.writeParquet; the log here is written by hand,
  // as the spec has it, so this checks only that Delta's reader reads those files.
  const root = await Deno.makeTempDir({ prefix: "delta_reader_duckdb_" });
  const engine = new LakeEngine();
  try {
    const dir = "dt=2026-01-01/type=a b+c%25d%3Ae"; // Hive-escaped "a b+c%d:e"
    await Deno.mkdir(join(root, dir), { recursive: true });
    const n = 5;
    const micros = Date.UTC(2026, 0, 1) * 1000;
    await engine.writeParquet({
      event_id: { kind: "utf8", values: Array.from({ length: n }, (_, i) => `e-${i}`) },
      log_offset: { kind: "int64", values: Float64Array.from({ length: n }, (_, i) => 1000 + i) },
      log_partition: { kind: "int32", values: Int32Array.from({ length: n }, (_, i) => i % 3) },
      occurred_at: {
        kind: "timestamp_us",
        values: Float64Array.from({ length: n }, (_, i) => micros + i * 1e6),
      },
      amount: { kind: "float64_nullable", values: [1.5, null, 2.5, null, 3] },
    }, join(root, dir, "part-0.parquet"));
    const size = (await Deno.stat(join(root, dir, "part-0.parquet"))).size;
    const fields = [
      ["event_id", "string"],
      ["log_offset", "long"],
      ["log_partition", "integer"],
      ["occurred_at", "timestamp"],
      ["amount", "double"],
      ["dt", "string"],
      ["type", "string"],
    ].map(([name, type]) => ({ name, type, nullable: true, metadata: {} }));
    const actions = [
      { protocol: { minReaderVersion: 1, minWriterVersion: 2 } },
      {
        metaData: {
          id: crypto.randomUUID(),
          format: { provider: "parquet", options: {} },
          schemaString: JSON.stringify({ type: "struct", fields }),
          partitionColumns: ["dt", "type"],
          configuration: {},
          createdTime: Date.now(),
        },
      },
      {
        add: {
          path: encodeURI(`${dir}/part-0.parquet`),
          partitionValues: { dt: "2026-01-01", type: AWKWARD_TYPE },
          size,
          modificationTime: Date.now(),
          dataChange: true,
          stats: JSON.stringify({ numRecords: n }),
        },
      },
    ];
    await Deno.mkdir(join(root, "_delta_log"));
    await Deno.writeTextFile(
      join(root, "_delta_log", "00000000000000000000.json"),
      actions.map((a) => JSON.stringify(a)).join("\n") + "\n",
    );
    const table = await readDeltaTable(root, {
      columns: ["event_id", "log_offset", "log_partition", "occurred_at", "amount", "type"],
    });
    assert.equal(table.rows, n);
    assert.deepEqual(table.rowsByPartition, { [`dt=2026-01-01/type=${AWKWARD_TYPE}`]: n });
    assert.equal(table.files[0]?.actualSize, size);
    assert.deepEqual(table.values?.[1], [
      "e-1",
      1001,
      1,
      "2026-01-01T00:00:01Z",
      null,
      AWKWARD_TYPE,
    ]);
    assert.deepEqual(table.values?.[4], ["e-4", 1004, 1, "2026-01-01T00:00:04Z", 3, AWKWARD_TYPE]);
  } finally {
    engine.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("readDeltaTable() reads a Delta table on S3 (s3a://)", async () => {
  await using store = await s3Store();
  const uri = `s3a://${store.bucket}/delta-reader-${crypto.randomUUID().slice(0, 8)}/events`;
  const sample = await writeSample(uri, store.env);
  const table = await read(uri, store.env);
  assertMatchesSample(table, sample);
  assert.equal(table.table, uri);
  // s3:// names the same table (the scheme the product's S3 settings may use).
  const viaS3 = await readDeltaTable(uri.replace(/^s3a:/, "s3:"), { env: store.env });
  assert.deepEqual(viaS3.rowsByPartition, sample.rowsByPartition);
  await assert.rejects(
    readDeltaTable(`s3a://${store.bucket}/no-such-table`, { env: store.env }),
    /Not a Delta table/,
  );
});

async function copyDir(from: string, to: string): Promise<void> {
  const { code, stderr } = await new Deno.Command("cp", { args: ["-a", from, to] }).output();
  if (code !== 0) throw new Error(`Cannot copy "${from}": ${new TextDecoder().decode(stderr)}`);
}

interface S3Store extends AsyncDisposable {
  bucket: string;
  env: Record<string, string>;
}

const S3PROXY_IDENTITY = "delta-reader";
const S3PROXY_CREDENTIAL = "delta-reader-secret";

/** The suite's S3 when the environment names one, else a private s3proxy for this test. */
async function s3Store(): Promise<S3Store> {
  const endpoint = Deno.env.get("AWS_ENDPOINT_URL_S3") ?? Deno.env.get("AWS_ENDPOINT_URL");
  if (endpoint) {
    return {
      bucket: Deno.env.get("S3_TEST_BUCKET") ?? "streamgate-test",
      env: {}, // the reader inherits AWS_* from this process
      async [Symbol.asyncDispose]() {},
    };
  }
  const jar = (await runDeltaReader(["s3proxy-jar"])).trim();
  const dir = await Deno.makeTempDir({ prefix: "delta_reader_s3_" });
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  await Deno.mkdir(join(dir, "data"));
  await Deno.writeTextFile(
    join(dir, "s3proxy.properties"),
    [
      `s3proxy.endpoint=${base}`,
      "s3proxy.authorization=aws-v2-or-v4",
      `s3proxy.identity=${S3PROXY_IDENTITY}`,
      `s3proxy.credential=${S3PROXY_CREDENTIAL}`,
      "jclouds.provider=filesystem",
      `jclouds.filesystem.basedir=${join(dir, "data")}`,
    ].join("\n") + "\n",
  );
  const log = join(dir, "s3proxy.log");
  // exec: the child is the JVM itself, so killing the child stops the server.
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -jar "$0" --properties "$1" >"$2" 2>&1`,
      jar,
      join(dir, "s3proxy.properties"),
      log,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await waitForHttp(base, child, log);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    bucket: "delta-reader-test",
    env: {
      AWS_ENDPOINT_URL_S3: base,
      AWS_ACCESS_KEY_ID: S3PROXY_IDENTITY,
      AWS_SECRET_ACCESS_KEY: S3PROXY_CREDENTIAL,
      AWS_REGION: "us-east-1",
    },
    [Symbol.asyncDispose]: stop,
  };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Any HTTP answer (an anonymous request gets 403) means s3proxy is up. */
async function waitForHttp(base: string, child: Deno.ChildProcess, log: string): Promise<void> {
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exited) break;
    try {
      const res = await fetch(base, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const tail = (await Deno.readTextFile(log).catch(() => "")).split("\n").slice(-20).join("\n");
  throw new Error(
    `s3proxy did not answer on ${base} ${exited ? "(it exited)" : "in 60 s"}:\n${tail}`,
  );
}
