/**
 * A Kafka broker of a test's own (`scripts/kafka.sh` with its own state directory and ports), for
 * tests that stop and restart the broker without disturbing anyone else's.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("../scripts/kafka.sh", import.meta.url));
/** Where `scripts/kafka.sh` keeps the shared broker's jars: its KAFKA_STATE_DIR, as it reads it. */
const SHARED_STATE = Deno.env.get("KAFKA_STATE_DIR") ||
  fileURLToPath(new URL("../.kafka", import.meta.url));

/** A private broker: its address and its life cycle. */
export interface PrivateBroker {
  brokers: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops it and removes its data. */
  remove(): Promise<void>;
}

async function kafkaSh(env: Record<string, string>, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("bash", { args: [SCRIPT, ...args], env, stdin: "null" })
    .output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`kafka.sh ${args.join(" ")} failed: ${text.slice(-2000)}`);
  }
}

/** `n` distinct ports nothing listens on now. */
function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/**
 * Starts a broker on free ports (broker and controller) sharing the downloaded jars, so two test
 * runs on one machine each get their own.
 */
export async function startPrivateBroker(): Promise<PrivateBroker> {
  const [port, controllerPort] = freePorts(2) as [number, number];
  const state = await Deno.makeTempDir({ prefix: "kafka_private_" });
  // The jars the shared broker's fetch downloaded: no second Maven resolution.
  for await (const entry of Deno.readDir(SHARED_STATE)) {
    if (entry.isDirectory && entry.name.startsWith("libs-")) {
      await Deno.symlink(`${SHARED_STATE}/${entry.name}`, `${state}/${entry.name}`);
    }
  }
  const env = {
    KAFKA_STATE_DIR: state,
    KAFKA_PORT: String(port),
    KAFKA_CONTROLLER_PORT: String(controllerPort),
  };
  const broker: PrivateBroker = {
    brokers: `127.0.0.1:${port}`,
    start: async () => {
      await kafkaSh(env, "start");
      await kafkaSh(env, "wait");
    },
    stop: () => kafkaSh(env, "stop"),
    remove: async () => {
      await kafkaSh(env, "stop");
      await Deno.remove(state, { recursive: true });
    },
  };
  await broker.start();
  await kafkaSh(env, "topics");
  return broker;
}
