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
import { type Action, type AddFile, type RemoveFile, TAGS_KEY } from "./protocol.ts";
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

/** The metadata row of a checkpoint. */
function metadataRow(snapshot: Snapshot): string {
  const meta = snapshot.metadata!, pcols = meta.partitionColumns;
  return row(
    "metaData",
    `{'id': ${lit(meta.id)}, 'name': ${lit(meta.name)}, 'description': ${lit(meta.description)},
      'format': {'provider': 'parquet', 'options': MAP([]::VARCHAR[], []::VARCHAR[])},
      'schemaString': ${lit(meta.schemaString)},
      'partitionColumns': [${pcols.map(lit).join(", ")}]::VARCHAR[],
      'configuration': MAP([${Object.keys(meta.configuration).map(lit).join(", ")}]::VARCHAR[],
                           [${Object.values(meta.configuration).map(lit).join(", ")}]::VARCHAR[]),
      'createdTime': ${meta.createdTime ?? "NULL"}}`,
  );
}

/** One kind of actions as a flat table `name` and the checkpoint rows built from it. */
interface FlatRows {
  name: string;
  columns: Record<string, Column>;
  row: string;
}

/** The txn, add and remove actions of a snapshot as flat tables (empty kinds left out). */
function flatRows(snapshot: Snapshot, keepSince: number): FlatRows[] {
  const pcols = snapshot.metadata!.partitionColumns;
  const pv = (list: { partitionValues?: Record<string, string | null> }[]) =>
    Object.fromEntries(
      pcols.map((c, i) => [`pv_${i}`, text(list.map((f) => f.partitionValues?.[c] ?? null))]),
    );
  const txns = [...snapshot.txns];
  const adds = [...snapshot.files.values()];
  const removes = [...snapshot.tombstones.values()].filter((r) => r.deletionTimestamp >= keepSince);
  const out: FlatRows[] = [];
  if (txns.length > 0) {
    out.push({
      name: "ckpt_txn",
      columns: {
        app: text(txns.map(([a]) => a)),
        version: { kind: "int64", values: Float64Array.from(txns, ([, v]) => v) },
      },
      row: row(
        "txn",
        `{'appId': app, 'version': version, 'lastUpdated': NULL::BIGINT}`,
        "FROM ckpt_txn",
      ),
    });
  }
  if (adds.length > 0) {
    out.push({
      name: "ckpt_add",
      columns: {
        path: text(adds.map((f) => f.path)),
        size: { kind: "int64", values: Float64Array.from(adds, (f) => f.size) },
        mtime: { kind: "int64", values: Float64Array.from(adds, (f) => f.modificationTime) },
        stats: text(adds.map((f) => f.stats ?? null)),
        tag: text(adds.map((f) => f.tags?.[TAGS_KEY] ?? null)),
        ...pv(adds),
      },
      row: row(
        "add",
        `{'path': path, 'partitionValues': ${partitionMap(pcols)}, 'size': size,
          'modificationTime': mtime, 'dataChange': false, 'stats': stats,
          'tags': CASE WHEN tag IS NULL THEN NULL::${MAP} ELSE MAP([${lit(TAGS_KEY)}], [tag]) END}`,
        "FROM ckpt_add",
      ),
    });
  }
  if (removes.length > 0) {
    out.push({
      name: "ckpt_remove",
      columns: {
        path: text(removes.map((r) => r.path)),
        deleted: { kind: "int64", values: Float64Array.from(removes, (r) => r.deletionTimestamp) },
        size: { kind: "int64_nullable", values: removes.map((r) => r.size ?? null) },
        ...pv(removes),
      },
      row: row(
        "remove",
        `{'path': path, 'deletionTimestamp': deleted, 'dataChange': false,
          'extendedFileMetadata': true, 'partitionValues': ${partitionMap(pcols)},
          'size': size, 'tags': NULL::${MAP}}`,
        "FROM ckpt_remove",
      ),
    });
  }
  return out;
}

/** The Parquet bytes of a checkpoint of `snapshot`, keeping tombstones removed after `keepSince`. */
export async function writeCheckpoint(
  engine: LakeEngine,
  snapshot: Snapshot,
  keepSince: number,
): Promise<{ bytes: Uint8Array; actions: number }> {
  const proto = snapshot.protocol;
  if (!snapshot.metadata || !proto) throw new Error("Cannot checkpoint a table without metadata");
  const parts = [
    row(
      "protocol",
      `{'minReaderVersion': ${proto.minReaderVersion}, 'minWriterVersion': ${proto.minWriterVersion}}`,
    ),
    metadataRow(snapshot),
  ];
  const loaded: string[] = [];
  try {
    for (const flat of flatRows(snapshot, keepSince)) {
      await engine.load(flat.name, flat.columns);
      loaded.push(flat.name);
      parts.push(flat.row);
    }
    const out = await engine.copyParquet(parts.join("\nUNION ALL\n"));
    return { bytes: out.bytes, actions: out.rows };
  } finally {
    if (loaded.length > 0) {
      await engine.exec(loaded.map((t) => `DROP TABLE IF EXISTS ${t}`).join("; ")).catch(() => {});
    }
  }
}

type Row = Record<string, unknown>;
const num = (v: unknown) => v === null || v === undefined ? undefined : Number(v);

/** The protocol and metadata actions of a checkpoint. */
async function tableActions(
  engine: LakeEngine,
  src: string,
  partitionColumns: readonly string[],
): Promise<Action[]> {
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
  return actions;
}

/** The txn, add and remove actions of a checkpoint. */
async function fileActions(
  engine: LakeEngine,
  src: string,
  partitionColumns: readonly string[],
): Promise<Action[]> {
  const pvs = (col: "add" | "remove") =>
    partitionColumns.map((c, i) =>
      `, element_at("${col}".partitionValues, ${lit(c)})[1] AS pv_${i}`
    )
      .join("");
  const partitions = (r: Row) =>
    Object.fromEntries(
      partitionColumns.map((c, i) => [c, (r[`pv_${i}`] ?? null) as string | null]),
    );
  const actions: Action[] = [];
  for (
    const r of await engine.query(
      `SELECT txn.appId AS app, txn.version AS version FROM ${src} WHERE txn IS NOT NULL`,
    )
  ) actions.push({ txn: { appId: String(r.app), version: num(r.version)! } });
  for (
    const r of await engine.query(
      `SELECT "add".path AS path, "add".size AS size, "add".modificationTime AS mtime,
              "add".stats AS stats, element_at("add".tags, ${lit(TAGS_KEY)})[1] AS tag${
        pvs("add")
      } FROM ${src} WHERE "add" IS NOT NULL`,
    )
  ) {
    const add: AddFile = {
      path: String(r.path),
      partitionValues: partitions(r),
      size: num(r.size)!,
      modificationTime: num(r.mtime) ?? 0,
      dataChange: false,
      ...(r.stats ? { stats: String(r.stats) } : {}),
      ...(r.tag ? { tags: { [TAGS_KEY]: String(r.tag) } } : {}),
    };
    actions.push({ add });
  }
  for (
    const r of await engine.query(
      `SELECT "remove".path AS path, "remove".deletionTimestamp AS deleted,
              "remove".size AS size${pvs("remove")} FROM ${src} WHERE "remove" IS NOT NULL`,
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
  return actions;
}

/** Reads a checkpoint file (a local path) into a snapshot at `version`. */
export async function readCheckpoint(
  engine: LakeEngine,
  path: string,
  version: number,
  partitionColumns: readonly string[],
): Promise<Snapshot> {
  const src = `read_parquet(${sqlPath(path)}, hive_partitioning = false)`;
  const actions = [
    ...await tableActions(engine, src, partitionColumns),
    ...await fileActions(engine, src, partitionColumns),
  ];
  const snapshot = new Snapshot();
  // A checkpoint holds no order between its actions: removes (tombstones) go last.
  snapshot.apply(version, [
    ...actions.filter((a) => !("remove" in a)),
    ...actions.filter((a) => "remove" in a),
  ]);
  return snapshot;
}
