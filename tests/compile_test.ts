/**
 * `deno task compile`: one executable that embeds the DuckDB-wasm worker and its `.wasm`, the
 * docs page and the dashboard, and runs every role.
 *
 * `deno compile` appends the program to a runtime (`denort`) that it downloads from Deno's release
 * host, which these machines cannot reach, and that no registry here has. `DENORT_BIN` names a
 * local one instead:
 *
 * - With `DENORT_BIN` set, the binary is built from the `compile` task into a temporary directory
 *   and run for real in embedded mode: events in over HTTP, Parquet out in the lake, the query
 *   API reading it back through the embedded DuckDB, SIGTERM, exit 0.
 * - Without it, the compile step alone runs, with the `deno` binary standing in for `denort`
 *   (the result does not run as the program; it is deleted): that still type-checks, resolves the
 *   `--include`s and `--exclude`s and embeds every file, which is where the task breaks.
 *
 * The command is the task's own text from deno.json, with the output path swapped, so this tests
 * what `deno task compile` runs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { clientEvent, postEvents, startGateway, waitFor } from "./gateway_process.ts";
import { parquetFiles } from "./lake_helpers.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DENORT_BIN = Deno.env.get("DENORT_BIN");

/** The `compile` task's arguments (after `deno`), split on spaces as the task shell would. */
async function compileTask(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const task = config.tasks?.compile;
  assert.equal(typeof task, "string", "deno.json has no compile task");
  const words = (task as string).trim().split(/\s+/);
  assert.equal(words[0], "deno", "the compile task runs deno");
  assert.equal(words[1], "compile", "the compile task runs deno compile");
  return words.slice(1);
}

/** Values of every `--name value` flag. */
function flagValues(args: string[], name: string): string[] {
  return args.flatMap((a, i) => (a === name ? [args[i + 1]!] : []));
}

/** The task's arguments with the output path replaced. */
function withOutput(args: string[], output: string): string[] {
  const i = args.indexOf("--output");
  assert.ok(i > 0, "the compile task names its --output");
  return [...args.slice(0, i + 1), output, ...args.slice(i + 2)];
}

async function compile(output: string, denort: string): Promise<{ code: number; log: string }> {
  const args = withOutput(await compileTask(), output);
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { DENORT_BIN: denort, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const log = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  return { code, log };
}

Deno.test("compile task: every --include and --exclude names a file that exists", async () => {
  const args = await compileTask();
  const included = flagValues(args, "--include");
  const excluded = flagValues(args, "--exclude");
  // The worker is started from a URL at run time: nothing imports it statically.
  assert.ok(included.includes("lake/engine/duckdb_worker.ts"), "the DuckDB worker is included");
  for (const wasm of ["duckdb-mvp.wasm", "duckdb-coi.wasm"]) {
    assert.ok(excluded.some((p) => p.endsWith(`/${wasm}`)), `${wasm} is excluded`);
  }
  assert.ok(!excluded.some((p) => p.includes("duckdb-eh.wasm")), "duckdb-eh.wasm stays in");
  // A stale path (a package upgraded) is silently ignored by deno compile: the binary would grow
  // back by the excluded size, or, for bintrees' test data, the compile would crash again.
  for (const path of [...included, ...excluded]) {
    const stat = await Deno.stat(join(ROOT, path)).catch(() => undefined);
    assert.ok(stat, `"${path}" in the compile task does not exist; update the task`);
  }
  assert.ok(args.includes("--unstable-cron"), "Deno.cron needs --unstable-cron");
});

Deno.test({
  name: "compile task: compiles, with deno standing in for denort (DENORT_BIN unset)",
  ignore: DENORT_BIN !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "compile_check_" });
    try {
      const output = join(dir, "streamgate");
      const { code, log } = await compile(output, Deno.execPath());
      assert.equal(code, 0, `deno compile failed:\n${log.slice(-4000)}`);
      const size = (await Deno.stat(output)).size - (await Deno.stat(Deno.execPath())).size;
      // What it embeds: the program, the worker, duckdb-eh.wasm (17 MB) and the other packages.
      assert.ok(size > 20e6, `embedded only ${size} bytes`);
      assert.ok(size < 90e6, `embedded ${Math.round(size / 1e6)} MB: an --exclude went stale?`);
      assert.match(log, /duckdb_worker\.ts/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "compiled binary: embedded mode takes events into Parquet and stops on SIGTERM " +
    "(set DENORT_BIN to run)",
  ignore: !DENORT_BIN,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "compile_it_" });
    try {
      const binary = join(dir, "streamgate");
      const built = await compile(binary, DENORT_BIN!);
      assert.equal(built.code, 0, `deno compile failed:\n${built.log.slice(-4000)}`);

      // Run it from elsewhere: nothing may be read from the checkout.
      const env = {
        LAKE_DIR: join(dir, "lake"),
        WAL_DIR: join(dir, "wal"),
        DEAD_LETTER_DIR: join(dir, "dlq"),
        LAKE_FLUSH_INTERVAL_MS: "300",
        JOBS_CRON: "off",
      };
      const gw = await startGateway(env, 60_000, { executable: binary, cwd: dir });
      let stopped = false;
      try {
        assert.equal((await fetch(`${gw.url}/health`).then((r) => r.json())).status, "ok");
        const events = Array.from({ length: 30 }, (_, i) => clientEvent(i));
        const res = await postEvents(gw.url, events);
        assert.equal(res.status, 202, JSON.stringify(res.body));
        assert.equal(res.body.accepted, 30);

        // The embedded DuckDB worker writes bronze...
        const written = await waitFor(
          async () => (await parquetFiles(join(env.LAKE_DIR, "bronze"))).length > 0,
          30_000,
        );
        assert.ok(written, `no Parquet under the lake: ${JSON.stringify(gw.logs.slice(-5))}`);
        // ...and reads it back for the query API.
        let seen = 0;
        await waitFor(async () => {
          const page = await fetch(`${gw.url}/events?limit=100`).then((r) => r.json());
          seen = page.events?.length ?? 0;
          return seen === 30;
        }, 30_000);
        assert.equal(seen, 30, "GET /events reads every event back");

        // The docs' assets are embedded too.
        const doc = await fetch(`${gw.url}/openapi.json`).then((r) => r.json());
        assert.match(doc.openapi, /^3\.1\./);
        const page = await fetch(`${gw.url}/docs/docs.js`);
        assert.equal(page.status, 200);
        await page.body?.cancel();
        // So are the dashboard's (inline in the page, from routes/dashboard_assets/).
        const dashboard = await fetch(`${gw.url}/`);
        assert.equal(dashboard.status, 200);
        assert.match(await dashboard.text(), /<script>[^]*pollMetrics[^]*<\/script>/);

        const code = await gw.stop("SIGTERM");
        stopped = true;
        assert.equal(code, 0, `exit code after SIGTERM: ${JSON.stringify(gw.logs.slice(-5))}`);
        assert.ok(gw.logs.some((l) => l.msg === "Stopped"));
      } finally {
        if (!stopped) await gw.stop("SIGKILL");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
