/**
 * Processes the benchmarks start and watch: the gateway (`main.ts`, through the integration tests'
 * launcher), a bare `Deno.serve` baseline, the Upstash REST bridge, and command-line tools; plus
 * resident-memory sampling from `/proc` and a cleanup stack that runs on exit and on Ctrl-C.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type GatewayProcess, isProblem, startGateway } from "../../tests/gateway_process.ts";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

// ---------------------------------------------------------------------------------------------
// Cleanup: everything a run starts registers how to undo it; undone in reverse order.

const cleanups: { name: string; fn: () => Promise<unknown> | unknown }[] = [];

/** Registers an undo step; returns a function that runs it now (once) and unregisters it. */
export function onCleanup(name: string, fn: () => Promise<unknown> | unknown): () => Promise<void> {
  const entry = { name, fn };
  cleanups.push(entry);
  return async () => {
    const i = cleanups.indexOf(entry);
    if (i < 0) return;
    cleanups.splice(i, 1);
    await fn();
  };
}

/** Runs every registered undo step, newest first; a failing step does not stop the others. */
export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const { name, fn } = cleanups.pop()!;
    try {
      await fn();
    } catch (err) {
      console.error(`bench: cleaning up ${name} failed: ${(err as Error).message}`);
    }
  }
}

/** A temporary directory, removed at cleanup. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: `bench_${prefix}_` });
  onCleanup(`temp dir ${dir}`, () => Deno.remove(dir, { recursive: true }).catch(() => {}));
  return dir;
}

/** A gateway's data directories (WAL, lake, dead letters) under `dir`, as its environment. */
export function dataDirs(dir: string): Record<string, string> {
  return {
    WAL_DIR: join(dir, "wal"),
    LAKE_DIR: join(dir, "lake"),
    DEAD_LETTER_DIR: join(dir, "dead_letter"),
  };
}

// ---------------------------------------------------------------------------------------------
// Commands.

/** Runs a command to completion; throws with its stderr when it fails. */
export async function run(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; allowFail?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd ?? ROOT,
    ...(options.env ? { env: options.env } : {}),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const res = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (res.code !== 0 && !options.allowFail) {
    throw new Error(`${cmd} ${args.join(" ")} exited with ${res.code}: ${res.stderr.slice(-2000)}`);
  }
  return res;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Polls `url` until it answers at all (any status), or throws after `timeoutMs`. */
export async function waitForHttp(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.body?.cancel();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${url} did not answer in time`, { cause: err });
      await sleep(100);
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A long-running child whose output is discarded; stopped at cleanup. */
export interface Background {
  pid: number;
  stop(): Promise<void>;
}

/** Spawns a Deno script in the background; it is stopped (SIGTERM, then SIGKILL) at cleanup. */
export function spawnDeno(script: string, args: string[], env: Record<string, string>): Background {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", script, ...args],
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const stop = onCleanup(`${script} (pid ${child.pid})`, () => stopChild(child));
  return { pid: child.pid, stop };
}

async function stopChild(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch { /* gone */ }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 10_000);
  await child.status;
  clearTimeout(timer);
}

/** The bare `Deno.serve` hello-world next to which HTTP figures are put. */
export async function startHello(): Promise<Background & { url: string }> {
  const port = freePort();
  const bg = spawnDeno("bench/hello_server.ts", [String(port)], {});
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(url);
  return { ...bg, url };
}

/** `deno task redis:bridge` (`scripts/upstash_bridge.ts`) on a free port with a fresh token. */
export async function startBridge(): Promise<Background & { url: string; token: string }> {
  const port = freePort();
  const token = crypto.randomUUID();
  const bg = spawnDeno("scripts/upstash_bridge.ts", [], {
    UPSTASH_REDIS_REST_TOKEN: token,
    BRIDGE_PORT: String(port),
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(url);
  return { ...bg, url, token };
}

// ---------------------------------------------------------------------------------------------
// The gateway.

/** A gateway process with its pid (for /proc sampling). */
export interface Gateway extends GatewayProcess {
  pid: number;
  /** Its warnings and errors so far, counted by message, with one example of each. */
  problems(): Record<string, { count: number; example: Record<string, unknown> }>;
}

function problemsOf(logs: Record<string, unknown>[]) {
  const out: Record<string, { count: number; example: Record<string, unknown> }> = {};
  for (const l of logs) {
    if (!isProblem(l)) continue;
    const key = `${l.level ?? "raw"}: ${String(l.msg ?? l.raw).slice(0, 120)}`;
    const entry = out[key] ??= { count: 0, example: l };
    entry.count++;
  }
  return out;
}

/** This process' children, from /proc. */
async function childPids(): Promise<Set<number>> {
  const out = new Set<number>();
  for await (const task of Deno.readDir(`/proc/${Deno.pid}/task`)) {
    try {
      const text = await Deno.readTextFile(`/proc/${Deno.pid}/task/${task.name}/children`);
      for (const p of text.trim().split(/\s+/)) if (p) out.add(Number(p));
    } catch { /* the thread ended */ }
  }
  return out;
}

/**
 * Starts `main.ts` with `env` (and no cron) through the integration tests' launcher, finds its pid,
 * and registers its stop at cleanup. The launcher waits for the info line "Listening", so the log
 * level stays `info` (the gateway logs nothing per request at that level).
 */
export async function startMain(env: Record<string, string>): Promise<Gateway> {
  const before = await childPids();
  const gw = await startGateway({ JOBS_CRON: "off", ...env }, 120_000);
  let pid = 0;
  for (const p of await childPids()) {
    if (before.has(p)) continue;
    const cmd = await Deno.readTextFile(`/proc/${p}/cmdline`).catch(() => "");
    if (cmd.includes("main.ts")) pid = p;
  }
  if (!pid) {
    await gw.stop("SIGKILL");
    throw new Error("Cannot find the gateway's pid");
  }
  const stop = onCleanup(`gateway pid ${pid}`, () => stopGateway(gw));
  return {
    ...gw,
    pid,
    problems: () => problemsOf(gw.logs),
    async stop() {
      await stop();
      return 0;
    },
  };
}

async function stopGateway(gw: GatewayProcess): Promise<void> {
  // A clean stop flushes the lake and leaves the consumer group; give it its shutdown budget.
  const killer = setTimeout(() => gw.stop("SIGKILL"), 30_000);
  await gw.stop("SIGTERM");
  clearTimeout(killer);
}

// ---------------------------------------------------------------------------------------------
// Memory.

/** VmRSS and VmHWM (peak) of a process, in MB. */
export async function memoryOf(pid: number): Promise<{ rssMb: number; hwmMb: number }> {
  const text = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
  return { rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024 };
}

/** Resets a process' peak RSS (VmHWM) to its current RSS, so a phase can be measured alone. */
export async function resetPeak(pid: number): Promise<void> {
  await Deno.writeTextFile(`/proc/${pid}/clear_refs`, "5").catch(() => {});
}

/** What {@link RssSampler.stop} answers. */
export interface RssReport {
  /** The kernel's peak (VmHWM) since the sampler started. */
  peakMb: number;
  /** First, highest and last sampled VmRSS. */
  firstMb: number;
  maxSampledMb: number;
  lastMb: number;
  /** `[seconds since start, MB]`, one per interval. */
  samples: [number, number][];
}

/** Samples a process' VmRSS every `everyMs` and reads its VmHWM at the end. */
export class RssSampler {
  readonly #pid: number;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #t0 = performance.now();
  readonly #samples: [number, number][] = [];
  #hwm = 0;

  private constructor(pid: number, everyMs: number) {
    this.#pid = pid;
    this.#timer = setInterval(() => void this.#sample(), everyMs);
  }

  /** Resets the process' peak and starts sampling. */
  static async start(pid: number, everyMs = 500): Promise<RssSampler> {
    await resetPeak(pid);
    const s = new RssSampler(pid, everyMs);
    await s.#sample();
    return s;
  }

  async #sample(): Promise<void> {
    try {
      const m = await memoryOf(this.#pid);
      this.#samples.push([Math.round((performance.now() - this.#t0) / 100) / 10, round1(m.rssMb)]);
      this.#hwm = Math.max(this.#hwm, m.hwmMb);
    } catch { /* the process is gone */ }
  }

  async stop(): Promise<RssReport> {
    clearInterval(this.#timer);
    await this.#sample();
    const rss = this.#samples.map(([, mb]) => mb);
    return {
      peakMb: round1(Math.max(this.#hwm, ...rss)),
      firstMb: rss[0] ?? 0,
      maxSampledMb: Math.max(0, ...rss),
      lastMb: rss.at(-1) ?? 0,
      samples: this.#samples,
    };
  }
}

export const round1 = (n: number) => Math.round(n * 10) / 10;

/** The 1-, 5- and 15-minute load averages, as `uptime` prints them. */
export async function loadAverage(): Promise<string> {
  const [a, b, c] = (await Deno.readTextFile("/proc/loadavg")).split(" ");
  return `${a}, ${b}, ${c}`;
}

// ---------------------------------------------------------------------------------------------
// CPU.

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`; 100 on Linux x86-64). */
export const CLK_TCK = 100;

/**
 * The command name and CPU ticks (user + system) of a `/proc/<pid>/stat` or
 * `/proc/<pid>/task/<tid>/stat` line: a process' every thread, or one thread.
 */
export function statTicks(text: string): { name: string; ticks: number } {
  // Fields after the command name (which may hold spaces) start after its closing parenthesis.
  const close = text.lastIndexOf(")");
  const fields = text.slice(close + 2).split(" ");
  return {
    name: text.slice(text.indexOf("(") + 1, close),
    ticks: Number(fields[11]) + Number(fields[12]), // utime, stime (fields 14, 15)
  };
}

/**
 * A process' own CPU time so far (user + system, every thread), in seconds, from
 * `/proc/<pid>/stat`. Unlike a rate, CPU time per event is not blurred by the load generator or
 * other work sharing the cores.
 */
export async function cpuSeconds(pid: number = Deno.pid): Promise<number> {
  return statTicks(await Deno.readTextFile(`/proc/${pid}/stat`)).ticks / CLK_TCK;
}

/** Measures a process' CPU time over a phase: `const cpu = await CpuMeter.start(pid)`. */
export class CpuMeter {
  readonly #pid: number;
  readonly #start: number;

  private constructor(pid: number, start: number) {
    this.#pid = pid;
    this.#start = start;
  }

  static async start(pid: number = Deno.pid): Promise<CpuMeter> {
    return new CpuMeter(pid, await cpuSeconds(pid));
  }

  /** CPU seconds used since start. */
  async seconds(): Promise<number> {
    return (await cpuSeconds(this.#pid)) - this.#start;
  }

  /** Microseconds of CPU per unit of work, for `n` units done since start. */
  async usPer(n: number): Promise<number> {
    return n > 0 ? ((await this.seconds()) * 1e6) / n : 0;
  }
}
