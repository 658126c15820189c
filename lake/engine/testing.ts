/**
 * Test support for the lake's unit tests: a fresh lake directory and DuckDB engine per test.
 *
 * @module
 */
import { LakeEngine } from "./engine.ts";
import { LocalStore } from "../storage/local.ts";

/** Runs `fn` on a new temporary lake with its own engine and store; removes both afterwards. */
export async function withLake(
  prefix: string,
  fn: (lake: string, engine: LakeEngine, store: LocalStore) => Promise<void>,
): Promise<void> {
  const lake = await Deno.makeTempDir({ prefix });
  const engine = new LakeEngine();
  try {
    await fn(lake, engine, await LocalStore.open(lake));
  } finally {
    engine.close();
    await Deno.remove(lake, { recursive: true });
  }
}
