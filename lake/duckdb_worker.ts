/**
 * The only module that imports DuckDB-wasm (and the Arrow version it pairs with). It runs in a Web
 * Worker: the node-blocking bundle runs queries on the calling thread, and a Parquet write of tens of
 * thousands of rows takes long enough to stall every HTTP request if it ran on the main thread.
 *
 * Version 1.28.0 is pinned on purpose: it is the last release with Parquet built in; 1.29 and later
 * download the extension at first use and hang offline (see the README).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import * as duckdb from "@duckdb/duckdb-wasm/dist/duckdb-node-blocking.cjs";
import * as arrow from "apache-arrow";
import type { Column, EngineRequest, EngineResponse } from "./engine_protocol.ts";

const WASM = new URL(import.meta.resolve("@duckdb/duckdb-wasm/dist/duckdb-eh.wasm"));

async function open(): Promise<duckdb.DuckDBConnection> {
  const bundles = {
    mvp: { mainModule: WASM.pathname, mainWorker: "" },
    eh: { mainModule: WASM.pathname, mainWorker: "" },
  };
  const db = await duckdb.createDuckDB(bundles, new duckdb.VoidLogger(), duckdb.NODE_RUNTIME);
  await db.instantiate();
  db.open({});
  const conn = db.connect();
  conn.query("SET memory_limit = '1GB'");
  return conn;
}

const ready = open();

function toVector(col: Column): arrow.Vector {
  switch (col.kind) {
    case "utf8":
      return arrow.vectorFromArray(col.values, new arrow.Utf8());
    case "timestamp_us": {
      const data = BigInt64Array.from(col.values, (v) => BigInt(Math.round(v)));
      return arrow.makeVector(
        { type: new arrow.TimestampMicrosecond("UTC"), data, length: data.length } as never,
      );
    }
    case "int64": {
      const data = BigInt64Array.from(col.values, (v) => BigInt(v));
      return arrow.makeVector(data);
    }
    case "int32":
      return arrow.makeVector(Int32Array.from(col.values));
    case "float64":
      return arrow.makeVector(Float64Array.from(col.values));
    case "float64_nullable":
      return arrow.vectorFromArray(col.values, new arrow.Float64());
  }
}

/** Quotes a string as an SQL literal. Only ever called on paths the lake module built itself. */
function literal(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

let tableSeq = 0;

async function handle(req: EngineRequest): Promise<unknown> {
  const conn = await ready;
  switch (req.op) {
    case "writeParquet": {
      const name = `load_${++tableSeq}`;
      const table = new arrow.Table(
        Object.fromEntries(Object.entries(req.columns).map(([k, c]) => [k, toVector(c)])),
      );
      conn.insertArrowFromIPCStream(arrow.tableToIPC(table, "stream"), {
        name,
        schema: "main",
        create: true,
      });
      try {
        conn.query(`COPY "${name}" TO ${literal(req.path)} (FORMAT PARQUET, COMPRESSION ZSTD)`);
      } finally {
        conn.query(`DROP TABLE IF EXISTS "${name}"`);
      }
      return table.numRows;
    }
    case "query": {
      const stmt = conn.prepare(req.sql);
      try {
        const result = stmt.query(...req.params);
        return result.toArray().map((row) => row.toJSON());
      } finally {
        stmt.close();
      }
    }
  }
}

self.onmessage = async (e: MessageEvent<EngineRequest>) => {
  const req = e.data;
  let reply: EngineResponse;
  try {
    reply = { id: req.id, ok: true, value: await handle(req) };
  } catch (err) {
    reply = { id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  self.postMessage(reply);
};
