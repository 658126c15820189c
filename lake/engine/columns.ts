/**
 * Building engine columns from cast payload values (shared by the DuckDB worker's JSON cast and
 * the bronze writer's typed payload columns).
 *
 * @module
 */
import type { FieldKind } from "../silver/cast.ts";
import type { Column } from "./protocol.ts";

/** Column of one cast field, by kind. */
export function fieldColumn(kind: FieldKind, values: (string | number | null)[]): Column {
  switch (kind) {
    case "string":
      return { kind: "utf8", values: values as (string | null)[] };
    case "double":
      return { kind: "float64_nullable", values: values as (number | null)[] };
    case "int32":
      return { kind: "int32_nullable", values: values as (number | null)[] };
    case "int64":
      return { kind: "int64_nullable", values: values as (number | null)[] };
  }
}
