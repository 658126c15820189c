/**
 * Runs the real gateway (`main.ts`) as a child process for integration tests: what a user runs,
 * killable with SIGKILL, its JSON log lines captured.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const HEAP_CAP = "--v8-flags=--max-old-space-size=384";

/** A running gateway process. */
export interface GatewayProcess {
  url: string;
  port: number;
  /** JSON log lines seen so far. */
  logs: Record<string, unknown>[];
  /** Sends a signal; resolves with the exit code once the process is gone. */
  stop(signal?: Deno.Signal): Promise<number>;
}

/** Options of {@link startGateway}. */
export interface StartGatewayOptions {
  /** The program to run instead of `deno run --allow-all main.ts`, e.g. a compiled binary. */
  executable?: string;
  /** Its working directory. @default this process's */
  cwd?: string;
}

/** Starts `main.ts` with the given environment on an ephemeral port and waits until it listens. */
export async function startGateway(
  env: Record<string, string>,
  timeoutMs = 60_000,
  options: StartGatewayOptions = {},
): Promise<GatewayProcess> {
  const child = new Deno.Command(options.executable ?? Deno.execPath(), {
    // The same V8 heap cap as `deno task start`, so the tests run what is deployed.
    args: options.executable ? [] : ["run", "--allow-all", HEAP_CAP, MAIN],
    ...(options.cwd ? { cwd: options.cwd } : {}),
    env: { PORT: "0", HOSTNAME: "127.0.0.1", LOG_LEVEL: "info", ...env },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const logs: Record<string, unknown>[] = [];
  let listening: (port: number) => void;
  const port = new Promise<number>((resolve) => listening = resolve);
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const lines = stream.pipeThrough(new TextDecoderStream());
    let rest = "";
    for await (const chunk of lines) {
      rest += chunk;
      let nl;
      while ((nl = rest.indexOf("\n")) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.msg === "Listening") listening(entry.port as number);
        } catch {
          logs.push({ raw: line });
        }
      }
    }
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const exited = child.status.then(async (s) => {
    await pumped;
    return s.code;
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ready = await Promise.race([
    port,
    exited.then((code) => {
      throw new Error(
        `Gateway exited with ${code} before listening: ${JSON.stringify(logs.slice(-5))}`,
      );
    }),
    new Promise<never>((_, reject) =>
      timer = setTimeout(() => reject(new Error("Gateway did not start in time")), timeoutMs)
    ),
  ]).catch(async (err) => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await exited;
    throw err;
  }).finally(() => clearTimeout(timer));
  return {
    port: ready,
    url: `http://127.0.0.1:${ready}`,
    logs,
    async stop(signal: Deno.Signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      return await exited;
    },
  };
}

/**
 * Stops `gw` with SIGTERM and asserts a clean exit (0), quoting its last warnings and errors when
 * it is not: a graceful shutdown that fails must say why.
 */
export async function assertCleanStop(
  gw: GatewayProcess,
  what = "graceful shutdown",
): Promise<void> {
  const code = await gw.stop("SIGTERM");
  assert.equal(code, 0, `${what}: exit ${code}; last problems: ${lastProblems(gw)}`);
}

/** Whether a captured log line is a warning, an error or not JSON at all. */
export function isProblem(line: Record<string, unknown>): boolean {
  return line.level === "error" || line.level === "warn" || "raw" in line;
}

/** The gateway's last warnings, errors and non-JSON lines, as JSON: for assertion messages. */
export function lastProblems(gw: GatewayProcess, n = 6): string {
  return JSON.stringify(gw.logs.filter(isProblem).slice(-n));
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the last result. */
export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 200,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return await check();
}

/** A valid event as a client would send it. */
export function clientEvent(
  i: number,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    event_id: crypto.randomUUID(),
    type: i % 3 === 0 ? "purchase" : i % 3 === 1 ? "login" : "page_view",
    user_id: `user-${i % 17}`,
    occurred_at: new Date().toISOString(),
    payload: i % 3 === 0
      ? { amount: i % 500, currency: "EUR" }
      : i % 3 === 1
      ? { ip: "10.1.2.3" }
      : { page: "/home" },
    ...overrides,
  };
}

/** POSTs events as a JSON array; returns the status and parsed body. */
export async function postEvents(
  url: string,
  events: unknown[],
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(events),
  });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    body = { raw: text };
  }
  return { status: res.status, body };
}
