/**
 * Delta checkpoints: the whole state of a table at one version in one Parquet file, so a reader
 * replays a checkpoint and the few commits after it instead of the whole log. Written and read
 * with DuckDB: the add, remove and txn actions are loaded as flat columns, and the checkpoint's
 * nested columns (`add`, `remove`, `txn`, `metaData`, `protocol`, with maps for partition values)
 * are built in SQL. Reading selects their fields back as flat columns (duckdb-wasm 1.28 cannot hand
 * a STRUCT or LIST result to JavaScript).
 *
 * @module
 */
import type { LakeEngine } from "../engine/engine.ts";
import type { Column } from "../engine/protocol.ts";
import { sqlPath } from "../layout.ts";
import type { Action, AddFile, RemoveFile } from "./protocol.ts";
import { Snapshot } from "./snapshot.ts";

const MAP = "MAP(VARCHAR, VARCHAR)";
const TYPES = {
  txn: "STRUCT(appId VARCHAR, version BIGINT, lastUpdated BIGINT)",
  add: `STRUCT(path VARCHAR, partitionValues ${MAP}, size BIGINT, modificationTime BIGINT,
    dataChange BOOLEAN, stats VARCHAR, tags ${MAP})`,
  remove: `STRUCT(path VARCHAR, deletionTimestamp BIGINT, dataChange BOOLEAN,
    extendedFileMetadata BOOLEAN, partitionValues ${MAP}, size BIGINT, tags ${MAP})`,
  metaData: `STRUCT(id VARCHAR, name VARCHAR, description VARCHAR,
    format STRUCT(provider VARCHAR, options ${MAP}), schemaString VARCHAR,
    partitionColumns VARCHAR[], configuration ${MAP}, createdTime BIGINT)`,
  protocol: "STRUCT(minReaderVersion INTEGER, minWriterVersion INTEGER)",
} as const;
const KINDS = ["txn", "add", "remove", "metaData", "protocol"] as const;

/** A SQL string literal (checkpoint SQL only quotes the lake's own metadata). */
function lit(s: string | null | undefined): string {
  return s === null || s === undefined ? "NULL" : `'${s.replaceAll("'", "''")}'`;
}

/** `SELECT` of one checkpoint row kind, the other kinds NULL. */
function row(kind: (typeof KINDS)[number], value: string, from = ""): string {
  const cols = KINDS.map((k) => k === kind ? `${value} AS "${k}"` : `NULL::${TYPES[k]} AS "${k}"`);
  return `SELECT ${cols.join(", ")} ${from}`;
}

/** A map literal of partition values from the columns `pv_0`…. */
function partitionMap(columns: readonly string[]): string {
  if (columns.length === 0) return `MAP([]::VARCHAR[], []::VARCHAR[])`;
  return `MAP([${columns.map(lit).join(", ")}], [${columns.map((_, i) => `pv_${i}`).join(", ")}])`;
}

function text(values: (string | null)[]): Column {
  return { kind: "utf8", values };
}

/** The Parquet bytes of a checkpoint of `snapshot`, keeping tombstones removed after `keepSince`. */
export async function writeCheckpoint(
  engine: LakeEngine,
  snapshot: Snapshot,
  keepSince: number,
): Promise<{ bytes: Uint8Array; actions: number }> {
  const meta = snapshot.metadata, proto = snapshot.protocol;
  if (!meta || !proto) throw new Error("Cannot checkpoint a table without metadata");
  const pcols = meta.partitionColumns;
  const adds = [...snapshot.files.values()];
  const removes = [...snapshot.tombstones.values()].filter((r) => r.deletionTimestamp >= keepSince);
  const txns = [...snapshot.txns];
  const pv = (list: { partitionValues?: Record<string, string | null> }[]) =>
    Object.fromEntries(
      pcols.map((c, i) => [`pv_${i}`, text(list.map((f) => f.partitionValues?.[c] ?? null))]),
    );
  const parts: string[] = [
    row(
      "protocol",
      `{'minReaderVersion': ${proto.minReaderVersion}, 'minWriterVersion': ${proto.minWriterVersion}}`,
    ),
    row(
      "metaData",
      `{'id': ${lit(meta.id)}, 'name': ${lit(meta.name)}, 'description': ${lit(meta.description)},
        'format': {'provider': 'parquet', 'options': MAP([]::VARCHAR[], []::VARCHAR[])},
        'schemaString': ${lit(meta.schemaString)},
        'partitionColumns': [${pcols.map(lit).join(", ")}]::VARCHAR[],
        'configuration': MAP([${Object.keys(meta.configuration).map(lit).join(", ")}]::VARCHAR[],
                             [${Object.values(meta.configuration).map(lit).join(", ")}]::VARCHAR[]),
        'createdTime': ${meta.createdTime ?? "NULL"}}`,
    ),
  ];
  const tables: string[] = [];
  const load = async (name: string, columns: Record<string, Column>) => {
    await engine.load(name, columns);
    tables.push(name);
  };
  try {
    if (txns.length > 0) {
      await load("ckpt_txn", {
        app: text(txns.map(([a]) => a)),
        version: { kind: "int64", values: Float64Array.from(txns, ([, v]) => v) },
      });
      parts.push(
        row(
          "txn",
          `{'appId': app, 'version': version, 'lastUpdated': NULL::BIGINT}`,
          "FROM ckpt_txn",
        ),
      );
    }
    if (adds.length > 0) {
      await load("ckpt_add", {
        path: text(adds.map((f) => f.path)),
        size: { kind: "int64", values: Float64Array.from(adds, (f) => f.size) },
        mtime: { kind: "int64", values: Float64Array.from(adds, (f) => f.modificationTime) },
        stats: text(adds.map((f) => f.stats ?? null)),
        ...pv(adds),
      });
      parts.push(row(
        "add",
        `{'path': path, 'partitionValues': ${partitionMap(pcols)}, 'size': size,
          'modificationTime': mtime, 'dataChange': false, 'stats': stats,
          'tags': NULL::${MAP}}`,
        "FROM ckpt_add",
      ));
    }
    if (removes.length > 0) {
      await load("ckpt_remove", {
        path: text(removes.map((r) => r.path)),
        deleted: { kind: "int64", values: Float64Array.from(removes, (r) => r.deletionTimestamp) },
        size: { kind: "int64_nullable", values: removes.map((r) => r.size ?? null) },
        ...pv(removes),
      });
      parts.push(row(
        "remove",
        `{'path': path, 'deletionTimestamp': deleted, 'dataChange': false,
          'extendedFileMetadata': true, 'partitionValues': ${partitionMap(pcols)},
          'size': size, 'tags': NULL::${MAP}}`,
        "FROM ckpt_remove",
      ));
    }
    const out = await engine.copyParquet(parts.join("\nUNION ALL\n"));
    return { bytes: out.bytes, actions: out.rows };
  } finally {
    if (tables.length > 0) {
      await engine.exec(tables.map((t) => `DROP TABLE IF EXISTS ${t}`).join("; ")).catch(() => {});
    }
  }
}

/** Reads a checkpoint file (a local path) into a snapshot at `version`. */
export async function readCheckpoint(
  engine: LakeEngine,
  path: string,
  version: number,
  partitionColumns: readonly string[],
): Promise<Snapshot> {
  const src = `read_parquet(${sqlPath(path)}, hive_partitioning = false)`;
  const pvs = (col: "add" | "remove") =>
    partitionColumns.map((c, i) => `element_at("${col}".partitionValues, ${lit(c)})[1] AS pv_${i}`);
  const partitions = (r: Record<string, unknown>) =>
    Object.fromEntries(
      partitionColumns.map((c, i) => [c, (r[`pv_${i}`] ?? null) as string | null]),
    );
  const num = (v: unknown) => v === null || v === undefined ? undefined : Number(v);
  const actions: Action[] = [];
  for (
    const r of await engine.query(
      `SELECT "protocol".minReaderVersion AS rv, "protocol".minWriterVersion AS wv FROM ${src}
        WHERE "protocol" IS NOT NULL`,
    )
  ) actions.push({ protocol: { minReaderVersion: num(r.rv)!, minWriterVersion: num(r.wv)! } });
  for (
    const r of await engine.query(
      `SELECT "metaData".id AS id, "metaData".schemaString AS schema,
              "metaData".createdTime AS created FROM ${src} WHERE "metaData" IS NOT NULL`,
    )
  ) {
    actions.push({
      metaData: {
        id: String(r.id),
        format: { provider: "parquet", options: {} },
        schemaString: String(r.schema),
        partitionColumns: [...partitionColumns],
        configuration: {},
        ...(num(r.created) !== undefined ? { createdTime: num(r.created)! } : {}),
      },
    });
  }
  for (
    const r of await engine.query(
      `SELECT txn.appId AS app, txn.version AS version FROM ${src} WHERE txn IS NOT NULL`,
    )
  ) actions.push({ txn: { appId: String(r.app), version: num(r.version)! } });
  for (
    const r of await engine.query(
      `SELECT "add".path AS path, "add".size AS size, "add".modificationTime AS mtime,
              "add".stats AS stats${pvs("add").map((p) => `, ${p}`).join("")}
         FROM ${src} WHERE "add" IS NOT NULL`,
    )
  ) {
    const add: AddFile = {
      path: String(r.path),
      partitionValues: partitions(r),
      size: num(r.size)!,
      modificationTime: num(r.mtime) ?? 0,
      dataChange: false,
      ...(r.stats ? { stats: String(r.stats) } : {}),
    };
    actions.push({ add });
  }
  for (
    const r of await engine.query(
      `SELECT "remove".path AS path, "remove".deletionTimestamp AS deleted,
              "remove".size AS size${pvs("remove").map((p) => `, ${p}`).join("")}
         FROM ${src} WHERE "remove" IS NOT NULL`,
    )
  ) {
    const remove: RemoveFile = {
      path: String(r.path),
      deletionTimestamp: num(r.deleted) ?? 0,
      dataChange: false,
      partitionValues: partitions(r),
      ...(num(r.size) !== undefined ? { size: num(r.size)! } : {}),
    };
    actions.push({ remove });
  }
  const snapshot = new Snapshot();
  // A checkpoint holds no order between its actions: removes (tombstones) go last.
  snapshot.apply(version, [
    ...actions.filter((a) => !("remove" in a)),
    ...actions.filter((a) => "remove" in a),
  ]);
  return snapshot;
}
