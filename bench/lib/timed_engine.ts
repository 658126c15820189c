/**
 * A {@link LakeEngine} that times its calls, grouped by the shape of the statement: what the lake
 * jobs spend their time on, without touching the jobs' code.
 *
 * @module
 */
import {
  type Column,
  type ColumnarResult,
  LakeEngine,
  type Param,
  type ParquetOut,
} from "../../lake/engine/engine.ts";
import type { CastSpec } from "../../lake/silver/cast.ts";

/** A statement's shape: quoted text, lists and numbers blanked out, the first words kept. */
function shape(sql: string): string {
  const s = sql.replace(/'(?:[^']|'')*'/g, "'…'").replace(/\[[^\]]*\]/g, "[…]")
    .replace(/\b\d+\b/g, "N").replace(/\s+/g, " ").trim();
  const copyTo = /^COPY .* TO '…'/.test(s);
  return (copyTo ? "COPY (…) TO file: " : "") + s.slice(0, 90);
}

/** Time spent per statement shape. */
export interface CallTimes {
  [shape: string]: { calls: number; ms: number };
}

export class TimedEngine extends LakeEngine {
  readonly times: CallTimes = {};

  async #timed<T>(what: string, call: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await call();
    } finally {
      const e = this.times[what] ??= { calls: 0, ms: 0 };
      e.calls++;
      e.ms += performance.now() - t0;
    }
  }

  override writeParquet(columns: Record<string, Column>, path: string): Promise<number> {
    return this.#timed("writeParquet", () => super.writeParquet(columns, path));
  }

  override query<T = Record<string, unknown>>(sql: string, params: Param[] = []): Promise<T[]> {
    return this.#timed(shape(sql), () => super.query<T>(sql, params));
  }

  override queryColumns(sql: string, params: Param[] = []): Promise<ColumnarResult> {
    return this.#timed(shape(sql), () => super.queryColumns(sql, params));
  }

  override exec<T = Record<string, unknown>>(sql: string): Promise<T[]> {
    return this.#timed(shape(sql), () => super.exec<T>(sql));
  }

  override copyParquet(sql: string, options = ""): Promise<ParquetOut> {
    return this.#timed(`COPY (…) TO buffer: ${shape(sql)}`, () => super.copyParquet(sql, options));
  }

  override load(name: string, columns: Record<string, Column>): Promise<number> {
    return this.#timed("load (columns → a table)", () => super.load(name, columns));
  }

  override castJson(sql: string, spec: CastSpec, prefix: string): Promise<Record<string, number>> {
    return this.#timed(
      "castJson (payload JSON parsed and cast in the worker's JS)",
      () => super.castJson(sql, spec, prefix),
    );
  }

  /** The heaviest shapes, as `share% (s, calls) shape`, of the total. */
  summary(top = 8): { total_ms: number; top: string[] } {
    const entries = Object.entries(this.times).sort((a, b) => b[1].ms - a[1].ms);
    const total = entries.reduce((a, [, v]) => a + v.ms, 0);
    return {
      total_ms: Math.round(total),
      top: entries.slice(0, top).map(([k, v]) =>
        `${((100 * v.ms) / total).toFixed(0)}% (${(v.ms / 1000).toFixed(1)} s, ${v.calls}×) ${k}`
      ),
    };
  }
}
