/**
 * The lake of one process: its store and one {@link DeltaTable} per table, so every part of the
 * process (the bronze writer, the alert sink, the jobs, the query API) shares one snapshot of each
 * table instead of reading the logs once each.
 *
 * @module
 */
import type { LakeEngine } from "./engine/engine.ts";
import { DeltaTable, type DeltaTableOptions } from "./delta/table.ts";
import type { TableSchema } from "./delta/protocol.ts";
import { type Domain, SILVER_DOMAINS, TABLES } from "./layout.ts";
import {
  ALERTS_SCHEMA,
  BRONZE_SCHEMA,
  DAILY_TYPE_METRICS_SCHEMA,
  REJECTS_SCHEMA,
  SILVER_SCHEMAS,
  USER_DAILY_FEATURES_SCHEMA,
} from "./schemas.ts";
import type { ObjectStore } from "./storage/store.ts";

/** Options of {@link Lake}. */
export type LakeOptions = Omit<DeltaTableOptions, "engine">;

/** The lake's tables over one store. */
export class Lake {
  readonly store: ObjectStore;
  readonly bronze: DeltaTable;
  readonly alerts: DeltaTable;
  readonly silverRejects: DeltaTable;
  readonly userDailyFeatures: DeltaTable;
  readonly dailyTypeMetrics: DeltaTable;
  readonly #silver: Record<Domain, DeltaTable>;

  /** `engine` reads and writes the tables' checkpoints. */
  constructor(store: ObjectStore, engine: LakeEngine, options: LakeOptions = {}) {
    this.store = store;
    const open = (key: string, schema: TableSchema) =>
      new DeltaTable(store, key, schema, { ...options, engine });
    this.bronze = open(TABLES.bronze, BRONZE_SCHEMA);
    this.alerts = open(TABLES.alerts, ALERTS_SCHEMA);
    this.silverRejects = open(TABLES.silverRejects, REJECTS_SCHEMA);
    this.userDailyFeatures = open(TABLES.userDailyFeatures, USER_DAILY_FEATURES_SCHEMA);
    this.dailyTypeMetrics = open(TABLES.dailyTypeMetrics, DAILY_TYPE_METRICS_SCHEMA);
    this.#silver = Object.fromEntries(
      SILVER_DOMAINS.map((d) => [d, open(TABLES.silver(d), SILVER_SCHEMAS[d])]),
    ) as Record<Domain, DeltaTable>;
  }

  /** The silver table of a domain. */
  silver(domain: Domain): DeltaTable {
    return this.#silver[domain];
  }

  /** The table at `key` (one of {@link TABLES}). */
  table(key: string): DeltaTable {
    const t = this.tables().find((t) => t.key === key);
    if (!t) throw new Error(`No lake table at "${key}"`);
    return t;
  }

  /** Every table, bronze first. */
  tables(): DeltaTable[] {
    return [
      this.bronze,
      this.alerts,
      ...SILVER_DOMAINS.map((d) => this.#silver[d]),
      this.silverRejects,
      this.userDailyFeatures,
      this.dailyTypeMetrics,
    ];
  }
}
