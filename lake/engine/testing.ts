/**
 * Test support for the lake's unit tests: a fresh lake directory and DuckDB engine per test.
 *
 * @module
 */
import { LakeEngine } from "./engine.ts";

/** Runs `fn` on a new temporary lake with its own engine; removes both afterwards. */
export async function withLake(
  prefix: string,
  fn: (lake: string, engine: LakeEngine) => Promise<void>,
): Promise<void> {
  const lake = await Deno.makeTempDir({ prefix });
  const engine = new LakeEngine();
  try {
    await fn(lake, engine);
  } finally {
    engine.close();
    await Deno.remove(lake, { recursive: true });
  }
}
