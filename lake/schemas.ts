/**
 * Every lake table's columns and partition columns, as the Delta log records them. Data files hold
 * the data columns; partition values live in the log and in the hive-style directory names only
 * (Spark refuses a table whose files repeat a partition column).
 *
 * @module
 */
import { EVENT_TYPES } from "../shared/schemas.ts";
import type { DeltaColumn, DeltaType, TableSchema } from "./delta/protocol.ts";
import { type Domain, SILVER_DOMAINS } from "./layout.ts";
import {
  BRONZE_TYPED_COLUMNS,
  ENVELOPE_COLUMNS,
  LOG_COLUMNS,
  REJECT_COLUMNS,
  SILVER_SPECS,
} from "./silver/spec.ts";

/** DuckDB's type names of the lake's columns → Delta's. */
const DELTA_TYPE: Record<string, DeltaType> = {
  VARCHAR: "string",
  INTEGER: "integer",
  BIGINT: "long",
  DOUBLE: "double",
  TIMESTAMPTZ: "timestamp",
  BOOLEAN: "boolean",
};

/** A column of DuckDB type `sql` in Delta's terms (every lake column is nullable). */
function column(name: string, sql: string): DeltaColumn {
  const type = DELTA_TYPE[sql];
  if (!type) throw new Error(`No Delta type for column ${name} (${sql})`);
  return { name, type, nullable: true };
}

const DT: DeltaColumn = { name: "dt", type: "date", nullable: true };

/** A table partitioned by `dt` (and maybe more), from its data columns' DuckDB types. */
function table(data: readonly { name: string; sql: string }[], partitions = [DT]): TableSchema {
  return {
    columns: [...data.map((c) => column(c.name, c.sql)), ...partitions],
    partitionColumns: partitions.map((p) => p.name),
  };
}

/** Bronze: accepted events, by received date and type. */
export const BRONZE_SCHEMA: TableSchema = table([
  ...ENVELOPE_COLUMNS,
  { name: "payload", sql: "VARCHAR" },
  ...LOG_COLUMNS,
  // The payload's own fields, typed, and what silver does with the rest (see `bronze.ts`).
  ...BRONZE_TYPED_COLUMNS,
  { name: "extra", sql: "VARCHAR" },
  { name: "reject", sql: "VARCHAR" },
], [DT, { name: "type", type: "string", nullable: true }]);

/** Alerts, by the date of the event that raised them. */
export const ALERTS_SCHEMA: TableSchema = table([
  { name: "alert_id", sql: "VARCHAR" },
  { name: "user_id", sql: "VARCHAR" },
  { name: "raised_at", sql: "TIMESTAMPTZ" },
  { name: "occurred_at", sql: "TIMESTAMPTZ" },
  { name: "trigger_event_id", sql: "VARCHAR" },
  { name: "trigger_type", sql: "VARCHAR" },
  { name: "rule_score", sql: "DOUBLE" },
  { name: "fraud_score", sql: "DOUBLE" },
  { name: "rules", sql: "VARCHAR" },
  { name: "severity", sql: "VARCHAR" },
  { name: "reasons", sql: "VARCHAR" },
  { name: "llm_status", sql: "VARCHAR" },
  { name: "llm_score", sql: "DOUBLE" },
  { name: "llm_disagrees", sql: "BOOLEAN" },
  { name: "llm_verdict", sql: "VARCHAR" },
  { name: "llm_rationale", sql: "VARCHAR" },
  { name: "window_summary", sql: "VARCHAR" },
  { name: "event_ids", sql: "VARCHAR" },
  { name: "degraded", sql: "VARCHAR" },
]);

/** Columns of `gold/user_daily_features`, with their DuckDB types. */
export const USER_DAILY_FEATURES_COLUMNS: readonly { name: string; sql: string }[] = [
  { name: "user_id", sql: "VARCHAR" },
  { name: "events_total", sql: "BIGINT" },
  ...EVENT_TYPES.map((t) => ({ name: `n_${t}`, sql: "BIGINT" })),
  { name: "login_failure_ratio", sql: "DOUBLE" },
  { name: "distinct_ips", sql: "BIGINT" },
  { name: "distinct_countries", sql: "BIGINT" },
  { name: "distinct_devices", sql: "BIGINT" },
  { name: "purchase_count", sql: "BIGINT" },
  { name: "purchase_sum", sql: "DOUBLE" },
  { name: "purchase_avg", sql: "DOUBLE" },
  { name: "purchase_max", sql: "DOUBLE" },
  { name: "seconds_since_prev_purchase", sql: "DOUBLE" },
  { name: "alert_count", sql: "BIGINT" },
  { name: "max_fraud_score", sql: "DOUBLE" },
];

/** Columns of `gold/daily_type_metrics`, with their DuckDB types. */
export const DAILY_TYPE_METRICS_COLUMNS: readonly { name: string; sql: string }[] = [
  { name: "event_type", sql: "VARCHAR" },
  { name: "events", sql: "BIGINT" },
  { name: "distinct_users", sql: "BIGINT" },
  { name: "first_at", sql: "TIMESTAMPTZ" },
  { name: "last_at", sql: "TIMESTAMPTZ" },
  { name: "amount_sum", sql: "DOUBLE" },
];

/** Each silver domain's table, by occurred date. */
export const SILVER_SCHEMAS: Record<Domain, TableSchema> = Object.fromEntries(
  SILVER_DOMAINS.map((d) => [d, table(SILVER_SPECS[d].columns)]),
) as Record<Domain, TableSchema>;

/** `silver/_rejects`, by occurred date. */
export const REJECTS_SCHEMA: TableSchema = table(REJECT_COLUMNS);

/** `gold/user_daily_features`, by date. */
export const USER_DAILY_FEATURES_SCHEMA: TableSchema = table(USER_DAILY_FEATURES_COLUMNS);

/** `gold/daily_type_metrics`, by date. */
export const DAILY_TYPE_METRICS_SCHEMA: TableSchema = table(DAILY_TYPE_METRICS_COLUMNS);
