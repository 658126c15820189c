/**
 * Casting one bronze payload into a silver domain's typed columns. Pure and dependency-free: it
 * runs inside the DuckDB worker (the `castJson` operation), next to the data, so that a silver run
 * neither ships every row to the main thread nor blocks it with `JSON.parse`. The spec it works
 * from is plain data, built from the zod payload schemas by `silver.ts`.
 *
 * @module
 */

/** How a payload field is stored. */
export type FieldKind = "string" | "int32" | "int64" | "double";

/** What the caster needs to know, as plain (cloneable) data. */
export interface CastSpec {
  /** Domains in table order, each with its payload columns in column order. */
  domains: { name: string; fields: { name: string; kind: FieldKind; sql: string }[] }[];
  /** Known event types: their domain (index into `domains`) and the fields their schema declares. */
  types: Record<string, { domain: number; own: string[] }>;
}

/** A cast row: typed payload values in the domain's field order, plus `extra`. */
export type CastResult =
  | { ok: true; domain: number; values: (string | number | null)[]; extra: string | null }
  | { ok: false; reason: string };

const INT32_MAX = 2_147_483_647;

function castValue(v: unknown, kind: FieldKind): string | number | null | undefined {
  if (v === null || v === undefined) return null;
  switch (kind) {
    case "string":
      return typeof v === "string" ? v : undefined;
    case "double":
      return typeof v === "number" && Number.isFinite(v) ? v : undefined;
    case "int32":
      return Number.isInteger(v) && Math.abs(v as number) <= INT32_MAX ? v as number : undefined;
    case "int64":
      return Number.isSafeInteger(v) ? v as number : undefined;
  }
}

/** Sets of own fields per type, built once per spec. */
const ownSets = new WeakMap<CastSpec, Map<string, ReadonlySet<string>>>();

/**
 * Casts one bronze row of partition `type` (its `type=` directory) from its payload as JSON text:
 * {@link castObject} after `JSON.parse`.
 */
export function castRow(
  spec: CastSpec,
  type: string,
  eventType: string,
  payloadText: string,
): CastResult {
  let payload: unknown;
  try {
    payload = JSON.parse(payloadText);
  } catch {
    return known(spec, type, eventType) ?? { ok: false, reason: "payload_invalid_json" };
  }
  return castObject(spec, type, eventType, payload);
}

/** The reason a row of partition `type` cannot be cast whatever its payload, if there is one. */
function known(spec: CastSpec, type: string, eventType: string): CastResult | undefined {
  if (!Object.hasOwn(spec.types, type)) {
    return { ok: false, reason: `unknown_type: "${eventType.slice(0, 64)}" has no silver table` };
  }
  if (eventType !== type) {
    return { ok: false, reason: `type_mismatch: event_type "${eventType.slice(0, 64)}"` };
  }
  return undefined;
}

/**
 * Casts one row of partition `type` (its `type=` directory) from its payload as a parsed value.
 * Only the fields the type's own schema declares are cast; any other payload field goes to
 * `extra` as JSON, whatever its type. Rows that cannot be cast come back with a reason:
 * `unknown_type` (the `other` partition), `type_mismatch`, `payload_invalid_json`,
 * `payload_not_object`, `field_type`.
 */
export function castObject(
  spec: CastSpec,
  type: string,
  eventType: string,
  payload: unknown,
): CastResult {
  const refused = known(spec, type, eventType);
  if (refused) return refused;
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    return { ok: false, reason: "payload_not_object" };
  }
  const info = spec.types[type]!;
  let sets = ownSets.get(spec);
  if (!sets) ownSets.set(spec, sets = new Map());
  let own = sets.get(type);
  if (!own) sets.set(type, own = new Set(info.own));

  const fields = spec.domains[info.domain]!.fields;
  const obj = payload as Record<string, unknown>;
  const values: (string | number | null)[] = new Array(fields.length).fill(null);
  let extra: Record<string, unknown> | undefined;
  for (const key of Object.keys(obj)) {
    if (!own.has(key)) (extra ??= {})[key] = obj[key];
  }
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (!own.has(f.name) || !Object.hasOwn(obj, f.name)) continue;
    const v = castValue(obj[f.name], f.kind);
    if (v === undefined) {
      return { ok: false, reason: `field_type: payload.${f.name} is not ${f.sql}` };
    }
    values[i] = v;
  }
  return { ok: true, domain: info.domain, values, extra: extra ? JSON.stringify(extra) : null };
}
