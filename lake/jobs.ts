/**
 * The lake's batch jobs (silver, gold) behind one runner, for `Deno.cron`, the admin endpoint and
 * the `scripts/jobs.ts` command line.
 *
 * - One job at a time per lake, across processes: a run takes the jobs lock (`jobs_lock.ts`: an
 *   flock on local disk, a lease object on object storage); when another run holds it, the new
 *   one is skipped (`locked`). The tables' commits would refuse a second run's stale partitions
 *   anyway (`delta/replace.ts`); the lock saves the wasted work.
 * - The runner must own its {@link LakeEngine}s: a DuckDB worker runs one call at a time, so a job
 *   sharing the ingest engine would hold up bronze flushes for the length of a merge. Silver runs
 *   on every engine at once (one shard of the run's events each); gold on the first. After a run
 *   that did work the engines are recycled, which hands the workers' WebAssembly memory back.
 * - A run never throws: failures come back as `status: "failed"` and are logged.
 *
 * @module
 */
import type { Logger } from "../shared/logger.ts";
import type { LakeEngine } from "./engine/engine.ts";
import { type GoldOptions, type GoldStats, runGold } from "./gold/gold.ts";
import type { Lock } from "./storage/store.ts";
import type { Lake } from "./lake.ts";
import { tryJobsLock } from "./jobs_lock.ts";
import { vacuum } from "./delta/vacuum.ts";
import { runSilver, type SilverOptions, type SilverStats } from "./silver/silver.ts";

/** The jobs a caller may run; `all` is silver, then gold, then the tables' vacuum. */
export const JOBS = ["silver", "gold", "all"] as const;
export type JobName = (typeof JOBS)[number];

/** Whether a string names a job. */
export function isJobName(name: string): name is JobName {
  return (JOBS as readonly string[]).includes(name);
}

/** What one run did. */
export interface JobReport {
  job: JobName;
  status: "ok" | "skipped" | "failed";
  /** Why a run was skipped (`locked`: another run holds the jobs lock). */
  reason?: string;
  /** The error of a failed run. */
  error?: string;
  started_at: string;
  duration_ms: number;
  /** Silver: bronze rows read; gold: rows written; `all`: both. */
  rows: number;
  /** Bronze files read. */
  files: number;
  /** Partition files replaced. */
  partitions: number;
  silver?: SilverStats;
  gold?: GoldStats;
  /** `all`: what retention deleted (files no table needs any more, old log entries). */
  vacuum?: { data_files: number; data_bytes: number; log_files: number };
}

/** Counters of one job. */
export interface JobStats {
  runs: number;
  failures: number;
  skipped: number;
  last?: {
    at: string;
    status: JobReport["status"];
    duration_ms: number;
    rows: number;
    files: number;
    partitions: number;
  };
}

/** Options of {@link LakeJobs}. */
export interface LakeJobsOptions {
  silver?: SilverOptions;
  gold?: GoldOptions;
  /** Recycle the engine after a run that did work (frees its memory). @default true */
  recycleEngine?: boolean;
  /** `all` deletes files and log entries no table needs once older than this. @default 7 days */
  retentionMs?: number;
}

/** Runs silver and gold on a lake, one run at a time. */
export class LakeJobs {
  readonly #engines: readonly LakeEngine[];
  readonly #lake: Lake;
  readonly #logger: Logger;
  readonly #opts: LakeJobsOptions;
  #running: JobName | undefined;
  /** Counters per job (an `all` run also counts in `silver` and `gold`). */
  readonly stats: Record<JobName, JobStats> = {
    silver: { runs: 0, failures: 0, skipped: 0 },
    gold: { runs: 0, failures: 0, skipped: 0 },
    all: { runs: 0, failures: 0, skipped: 0 },
  };

  constructor(
    engines: LakeEngine | readonly LakeEngine[],
    lake: Lake,
    logger: Logger,
    opts: LakeJobsOptions = {},
  ) {
    this.#engines = Array.isArray(engines) ? engines : [engines as LakeEngine];
    if (this.#engines.length === 0) throw new Error("LakeJobs needs at least one engine");
    this.#lake = lake;
    this.#logger = logger;
    this.#opts = opts;
  }

  /** The job this runner is running now, if any. */
  get running(): JobName | undefined {
    return this.#running;
  }

  /** Runs a job once. Resolves with its report; never rejects for a failing job. */
  async run(name: JobName): Promise<JobReport> {
    if (!isJobName(name)) throw new Error(`Unknown job "${String(name).slice(0, 64)}"`);
    const startedAt = new Date();
    const started = performance.now();
    const report: JobReport = {
      job: name,
      status: "ok",
      started_at: startedAt.toISOString(),
      duration_ms: 0,
      rows: 0,
      files: 0,
      partitions: 0,
    };
    let lock: Lock | undefined;
    if (!this.#running) {
      this.#running = name; // claimed before the first await: concurrent calls see it
      try {
        lock = await tryJobsLock(this.#lake.store);
      } catch (err) {
        // A lake gone or replaced: the run fails before it writes anything.
        report.status = "failed";
        report.error = err instanceof Error ? err.message : String(err);
        return this.#finish(name, report, started);
      } finally {
        if (!lock) this.#running = undefined;
      }
    }
    if (!lock) {
      report.status = "skipped";
      report.reason = "locked";
      this.#record(name, report);
      this.#logger.info("Lake job skipped: another run holds the jobs lock", { job: name });
      return report;
    }
    let worked = false;
    try {
      if (name === "silver" || name === "all") {
        const s = await runSilver(this.#engines, this.#lake, this.#opts.silver);
        report.silver = s;
        report.rows += s.rows_in;
        report.files += s.files_read;
        report.partitions += s.partitions_rewritten;
        worked ||= s.batches_read > 0;
      }
      if (name === "gold" || name === "all") {
        const g = await runGold(this.#engines[0]!, this.#lake, this.#opts.gold);
        report.gold = g;
        report.rows += g.rows.user_daily_features + g.rows.daily_type_metrics;
        report.partitions += g.partitions_rewritten;
        worked ||= g.dates.length > 0;
      }
      if (name === "all") report.vacuum = await this.#vacuum();
    } catch (err) {
      report.status = "failed";
      report.error = err instanceof Error ? err.message : String(err);
      worked = true;
    } finally {
      this.#running = undefined;
      await lock.release();
      if (worked && this.#opts.recycleEngine !== false) {
        for (const engine of this.#engines) engine.recycle();
      }
    }
    return this.#finish(name, report, started);
  }

  /** Retention over every table (see `delta/vacuum.ts`). */
  async #vacuum(): Promise<NonNullable<JobReport["vacuum"]>> {
    const total = { data_files: 0, data_bytes: 0, log_files: 0 };
    const retentionMs = this.#opts.retentionMs ?? 7 * 86_400_000;
    for (const table of this.#lake.tables()) {
      const v = await vacuum(table, retentionMs);
      total.data_files += v.data_files;
      total.data_bytes += v.data_bytes;
      total.log_files += v.log_files;
    }
    return total;
  }

  /** Records a run's report and logs its end. */
  #finish(name: JobName, report: JobReport, started: number): JobReport {
    report.duration_ms = Math.round(performance.now() - started);
    this.#record(name, report);
    const fields = {
      job: name,
      status: report.status,
      duration_ms: report.duration_ms,
      rows: report.rows,
      files: report.files,
      partitions: report.partitions,
      ...(report.silver?.more ? { more: true } : {}),
    };
    if (report.status === "failed") {
      this.#logger.error("Lake job failed", { ...fields, err: report.error });
    } else this.#logger.info("Lake job finished", fields);
    return report;
  }

  #record(name: JobName, r: JobReport): void {
    const bump = (
      job: JobName,
      status: JobReport["status"],
      part: Pick<JobReport, "duration_ms" | "rows" | "files" | "partitions">,
    ) => {
      const s = this.stats[job];
      s.runs++;
      if (status === "failed") s.failures++;
      if (status === "skipped") s.skipped++;
      s.last = { at: r.started_at, status, ...part };
    };
    bump(name, r.status, r);
    if (name !== "all") return;
    if (r.silver) {
      bump("silver", "ok", {
        duration_ms: r.silver.duration_ms,
        rows: r.silver.rows_in,
        files: r.silver.files_read,
        partitions: r.silver.partitions_rewritten,
      });
    }
    if (r.gold) {
      bump("gold", "ok", {
        duration_ms: r.gold.duration_ms,
        rows: r.gold.rows.user_daily_features + r.gold.rows.daily_type_metrics,
        files: 0,
        partitions: r.gold.partitions_rewritten,
      });
    }
    if (r.status === "failed") {
      const zero = { duration_ms: 0, rows: 0, files: 0, partitions: 0 };
      bump(r.silver ? "gold" : "silver", "failed", zero);
    }
  }
}
