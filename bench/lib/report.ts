/**
 * The results of a run: one row per figure, each beside the limit measured in the same run and the
 * issue's target, rendered as a Markdown table (stdout and `latest.md`) and as JSON.
 *
 * @module
 */

/** One figure. */
export interface Row {
  /** The issue's item and a letter, e.g. `1a`. */
  id: string;
  what: string;
  /** The figure, formatted; `value` is the number it shows first (for JSON readers). */
  figure: string;
  value: number;
  unit: string;
  /** The limit measured in the same run, formatted with what it is. */
  limit?: string;
  /** figure / limit, formatted (e.g. `21%`). */
  ratio?: string;
  target?: string;
  /** Whether the target is met; absent when the row has no target. */
  pass?: boolean;
}

/** Facts about the run, printed above the table. */
export interface RunMeta {
  started_at: string;
  mode: "full" | "smoke";
  lake_events: number;
  machine: string;
  deno: string;
  load_at_start: string;
  load_at_end?: string;
  duration_s?: number;
  /** Load average before each section, as `uptime` prints it. */
  load_by_section: Record<string, string>;
}

export const fmtInt = (n: number) =>
  Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : String(n);
export const fmtMs = (
  n: number,
) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
export const fmtMb = (n: number) => `${n.toFixed(0)} MB`;
export const pct = (a: number, b: number) => `${b > 0 ? ((100 * a) / b).toFixed(0) : "–"}%`;

/** A run's results. */
export class Report {
  readonly meta: RunMeta;
  readonly rows: Row[] = [];
  /** Raw measurements per section (lag and RSS over time, tool outputs, stage timings). */
  readonly details: Record<string, unknown> = {};
  /** What bounds each missed target, measured in this run (stage timings). */
  readonly limits: Record<string, string[]> = {};
  readonly errors: Record<string, string> = {};

  constructor(meta: RunMeta) {
    this.meta = meta;
  }

  add(row: Row): void {
    this.rows.push(row);
    const mark = row.pass === undefined ? "" : row.pass ? "  [pass]" : "  [MISS]";
    console.error(
      `bench: ${row.id} ${row.what}: ${row.figure}${row.limit ? ` | ${row.limit}` : ""}${mark}`,
    );
  }

  /** A line of evidence about what bounds item `id`. */
  limitedBy(id: string, line: string): void {
    (this.limits[id] ??= []).push(line);
    console.error(`bench: ${id} limit: ${line}`);
  }

  markdown(findings?: string): string {
    const m = this.meta;
    const out: string[] = [];
    out.push(`# streamgate benchmarks (${m.mode})`, "");
    out.push(
      `Run ${m.started_at}${
        m.duration_s ? `, ${Math.round(m.duration_s)} s` : ""
      } on ${m.machine}, ` +
        `Deno ${m.deno}. Lake size for items 5–6: ${fmtInt(m.lake_events)} bronze events.`,
    );
    out.push(
      "",
      `Machine load (uptime: 1, 5, 15 min): ${m.load_at_start} at start, ` +
        `${m.load_at_end ?? "?"} at end; before each section: ` +
        Object.entries(m.load_by_section).map(([k, v]) => `${k}: ${v}`).join("; ") + ".",
      "",
    );
    out.push(
      "| # | Measurement | Figure | Limit measured in the same run | Ratio | Target | Result |",
      "| - | ----------- | ------ | ------------------------------ | ----- | ------ | ------ |",
    );
    for (const r of this.rows) {
      const result = r.pass === undefined ? "" : r.pass ? "pass" : "**miss**";
      out.push(
        `| ${r.id} | ${r.what} | ${r.figure} | ${r.limit ?? ""} | ${r.ratio ?? ""} | ${
          r.target ?? ""
        } | ${result} |`,
      );
    }
    if (Object.keys(this.errors).length > 0) {
      out.push("", "## Sections that failed", "");
      for (const [k, v] of Object.entries(this.errors)) out.push(`- ${k}: ${v}`);
    }
    if (Object.keys(this.limits).length > 0) {
      out.push("", "## Stage timings measured in this run", "");
      for (const [k, lines] of Object.entries(this.limits)) {
        for (const l of lines) out.push(`- ${k}: ${l}`);
      }
    }
    if (findings) out.push("", findings.trim());
    return out.join("\n") + "\n";
  }

  json(): string {
    return JSON.stringify(
      {
        meta: this.meta,
        rows: this.rows,
        limits: this.limits,
        errors: this.errors,
        details: this.details,
      },
      null,
      2,
    ) + "\n";
  }
}
