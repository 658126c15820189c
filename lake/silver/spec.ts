/**
 * What silver's tables look like: the columns every table starts with, and each domain's typed
 * payload columns, derived from the zod payload schemas (the one schema source that also feeds
 * validation, `/schemas` and OpenAPI).
 *
 * @module
 */
import { z } from "zod";
import { DOMAINS, EVENT_TYPES, type EventType, PAYLOADS } from "../../shared/schemas.ts";
import { type Domain, SILVER_DOMAINS } from "../layout.ts";
import { type CastResult, castRow, type CastSpec, type FieldKind } from "./cast.ts";

export type { CastResult, CastSpec, FieldKind } from "./cast.ts";

/** One column of a silver table. */
export interface SilverColumn {
  name: string;
  /** DuckDB type of the column. */
  sql: "VARCHAR" | "INTEGER" | "BIGINT" | "DOUBLE" | "TIMESTAMPTZ";
}

/** A payload field's column. */
export interface FieldColumn extends SilverColumn {
  kind: FieldKind;
}

/** The typed columns of one domain table. */
export interface DomainSpec {
  domain: Domain;
  types: EventType[];
  /** Payload columns, in order (union over the domain's types, all nullable). */
  fields: FieldColumn[];
  /** Per type: the payload fields its schema declares (the others go to `extra`). */
  fieldsOf: Record<string, ReadonlySet<string>>;
  /** Every column of the table, in file order. */
  columns: SilverColumn[];
}

/** An event's envelope fields as columns: the first columns of bronze and of every silver table. */
export const ENVELOPE_COLUMNS: readonly SilverColumn[] = [
  { name: "event_id", sql: "VARCHAR" },
  { name: "event_type", sql: "VARCHAR" },
  { name: "user_id", sql: "VARCHAR" },
  { name: "occurred_at", sql: "TIMESTAMPTZ" },
  { name: "received_at", sql: "TIMESTAMPTZ" },
  { name: "source", sql: "VARCHAR" },
];

/** Where an event sits in its log (a Kafka partition or the WAL). */
export const LOG_COLUMNS: readonly SilverColumn[] = [
  { name: "log_topic", sql: "VARCHAR" },
  { name: "log_partition", sql: "INTEGER" },
  { name: "log_offset", sql: "BIGINT" },
];

/** The columns every silver table starts with. */
export const COMMON_COLUMNS: readonly SilverColumn[] = [...ENVELOPE_COLUMNS, ...LOG_COLUMNS];

/** The last column of every silver table: the sort key (`userKey` in `layout.ts`). */
export const USER_KEY: SilverColumn = { name: "user_key", sql: "INTEGER" };

/** Columns of `silver/_rejects`. */
export const REJECT_COLUMNS: readonly SilverColumn[] = [
  ...COMMON_COLUMNS,
  { name: "bronze_type", sql: "VARCHAR" },
  { name: "payload", sql: "VARCHAR" },
  { name: "reason", sql: "VARCHAR" },
  USER_KEY,
];

const SQL_OF: Record<FieldKind, FieldColumn["sql"]> = {
  string: "VARCHAR",
  int32: "INTEGER",
  int64: "BIGINT",
  double: "DOUBLE",
};
const COLUMN_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const INT32_MAX = 2_147_483_647;

/** What a zod field schema becomes in silver (optional/default/nullable are unwrapped). */
export function fieldKind(schema: z.ZodType, where = "field"): FieldKind {
  let s = schema as z.ZodType;
  for (;;) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap() as z.ZodType;
    else if (s instanceof z.ZodDefault) s = s.unwrap() as z.ZodType;
    else break;
  }
  if (s instanceof z.ZodString || s instanceof z.ZodEnum) return "string";
  if (s instanceof z.ZodStringFormat) return "string";
  if (s instanceof z.ZodUnion) {
    const kinds = new Set(s.options.map((o) => fieldKind(o as z.ZodType, where)));
    if (kinds.size === 1 && kinds.has("string")) return "string";
    throw new Error(`Silver cannot store the union ${where}`);
  }
  if (s instanceof z.ZodNumber) {
    if (!s.isInt) return "double";
    const lo = s.minValue ?? -Infinity, hi = s.maxValue ?? Infinity;
    return lo >= -INT32_MAX - 1 && hi <= INT32_MAX ? "int32" : "int64";
  }
  throw new Error(`Silver has no column type for ${where} (${s.def.type})`);
}

function widen(a: FieldKind, b: FieldKind, where: string): FieldKind {
  if (a === b) return a;
  if (a === "string" || b === "string") {
    throw new Error(`${where} is a string in one type and a number in another`);
  }
  if (a === "double" || b === "double") return "double";
  return "int64";
}

/** Builds a domain's spec from the payload schemas of its types. */
export function domainSpec(domain: Domain): DomainSpec {
  const types = EVENT_TYPES.filter((t) => DOMAINS[t] === domain);
  const kinds = new Map<string, FieldKind>();
  const fieldsOf: Record<string, Set<string>> = {};
  const reserved = new Set([...COMMON_COLUMNS.map((c) => c.name), ...TRAILING_COLUMNS]);
  for (const type of types) {
    const shape = PAYLOADS[type].shape as Record<string, z.ZodType>;
    fieldsOf[type] = new Set(Object.keys(shape));
    for (const [name, schema] of Object.entries(shape)) {
      if (!COLUMN_NAME.test(name) || reserved.has(name)) {
        throw new Error(`Payload field "${name}" of ${type} cannot be a silver column`);
      }
      const kind = fieldKind(schema, `${type}.${name}`);
      const prev = kinds.get(name);
      kinds.set(name, prev ? widen(prev, kind, `${domain}.${name}`) : kind);
    }
  }
  const fields = [...kinds].map(([name, kind]) => ({ name, kind, sql: SQL_OF[kind] }));
  return {
    domain,
    types,
    fields,
    fieldsOf,
    columns: [
      ...COMMON_COLUMNS,
      ...fields,
      { name: "extra", sql: "VARCHAR" },
      { name: "payload", sql: "VARCHAR" },
      USER_KEY,
    ],
  };
}

/**
 * Names a payload field may not have: the columns every silver table ends with (`extra`, the
 * payload as sent) and bronze's `reject` (see {@link bronzeFields}).
 */
const TRAILING_COLUMNS = ["extra", "payload", "user_key", "reject", "type", "dt"] as const;

/** Every domain's spec. */
export const SILVER_SPECS: Record<Domain, DomainSpec> = Object.fromEntries(
  SILVER_DOMAINS.map((d) => [d, domainSpec(d)]),
) as Record<Domain, DomainSpec>;

/** The spec the worker casts with (plain data; see `silver_cast.ts`). */
export const CAST_SPEC: CastSpec = {
  domains: SILVER_DOMAINS.map((d) => ({
    name: d,
    fields: SILVER_SPECS[d].fields.map(({ name, kind, sql }) => ({ name, kind, sql })),
  })),
  types: Object.fromEntries(
    EVENT_TYPES.map((t) => [t, {
      domain: SILVER_DOMAINS.indexOf(DOMAINS[t]),
      own: [...SILVER_SPECS[DOMAINS[t]].fieldsOf[t]!],
    }]),
  ),
};

/** SQL: the domain of `s.bronze_type` (NULL for `other`). */
export const DOMAIN_OF_TYPE = `CASE s.bronze_type ${
  EVENT_TYPES.map((t) => `WHEN '${t}' THEN '${DOMAINS[t]}'`).join(" ")
} END`;

/** Casts one payload as silver does (for tests and tools; runs use the worker). */
export function castPayload(type: string, eventType: string, payload: string): CastResult {
  return castRow(CAST_SPEC, type, eventType, payload);
}

/**
 * The typed payload columns a bronze file of `type` carries: its type's own fields, typed as its
 * domain's silver columns. The bronze writer fills them from the validated payload (it has the
 * object in hand), so silver reads typed columns instead of parsing every payload's JSON. Empty
 * for `other` (no silver table).
 */
export function bronzeFields(type: string): FieldColumn[] {
  const info = CAST_SPEC.types[type];
  if (!info) return [];
  const own = new Set(info.own);
  return SILVER_SPECS[SILVER_DOMAINS[info.domain]!].fields.filter((f) => own.has(f.name));
}

/** Every typed payload column of bronze, over all types (a name has one type in every domain). */
export const BRONZE_TYPED_COLUMNS: readonly FieldColumn[] = (() => {
  const byName = new Map<string, FieldColumn>();
  for (const d of SILVER_DOMAINS) {
    for (const f of SILVER_SPECS[d].fields) {
      const prev = byName.get(f.name);
      if (prev && prev.sql !== f.sql) {
        throw new Error(
          `Payload field "${f.name}" is ${prev.sql} in one domain, ${f.sql} in another`,
        );
      }
      byName.set(f.name, f);
    }
  }
  return [...byName.values()];
})();
