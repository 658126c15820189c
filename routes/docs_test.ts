// In-process tests of GET /openapi.json and GET /docs (routes/docs.ts, routes/openapi.ts).
// The page in a real browser is tests/docs_page_test.ts.
import assert from "node:assert/strict";
import type { z } from "zod";
import { querySchemas } from "../lake/query/query.ts";
import type { Ingestor } from "../pipeline/ingest.ts";
import { silentLogger } from "../shared/logger.ts";
import { EVENT_TYPES } from "../shared/schemas.ts";
import { DOCS_CSP, docsRoutes } from "./docs.ts";
import { eventRoutes } from "./events.ts";
import { eventSchemaName, type OpenApiDocument } from "./openapi/openapi.ts";

type Json = Record<string, unknown>;
type Operation = {
  operationId?: string;
  parameters?: {
    name: string;
    in: string;
    required?: boolean;
    description?: string;
    schema?: Json;
  }[];
  requestBody?: { content: Record<string, Json> };
  responses: Record<string, { headers?: Json; content?: Record<string, { schema?: Json }> }>;
  security?: Record<string, string[]>[];
};

/** Every operation the gateway serves, in any role. */
const ROUTES = [
  "POST /events",
  "GET /schemas",
  "GET /schemas/{type}",
  "POST /score",
  "GET /events",
  "GET /alerts",
  "GET /users/{id}",
  "GET /stats",
  "GET /health",
  "GET /ready",
  "GET /metrics",
  "POST /admin/jobs/{name}",
  "GET /admin/jobs",
];
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

async function fetchDocument(options: Parameters<typeof docsRoutes>[0] = {}) {
  const res = await docsRoutes(options).request("/openapi.json");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  return await res.json() as OpenApiDocument;
}

function operations(doc: OpenApiDocument): [string, Operation][] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => m in item).map((m) =>
      [`${m.toUpperCase()} ${path}`, item[m] as Operation] as [string, Operation]
    )
  );
}

/** Every `$ref` in a value. */
function refs(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) { for (const v of value) refs(v, out); }
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k === "$ref" && typeof v === "string") out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

Deno.test("GET /openapi.json answers an OpenAPI 3.1 document", async (t) => {
  const doc = await fetchDocument();

  await t.step("with the required top-level fields", () => {
    assert.match(doc.openapi, /^3\.1\.\d+$/);
    assert.equal(typeof doc.info.title, "string");
    assert.equal(typeof doc.info.version, "string");
    assert.ok(Object.keys(doc.paths).every((p) => p.startsWith("/")));
  });

  await t.step("whose every $ref points at a component that exists", () => {
    const all = refs(doc);
    assert.ok(all.length > 20);
    for (const ref of all) {
      const m = /^#\/components\/schemas\/(.+)$/.exec(ref);
      assert.ok(m, `${ref} is not a local component reference`);
      assert.ok(doc.components.schemas[m[1]!], `${ref} does not resolve`);
    }
  });

  await t.step("whose operations have unique ids, responses and declared path parameters", () => {
    const ids = new Set<string>();
    for (const [name, op] of operations(doc)) {
      assert.ok(op.operationId, `${name} has no operationId`);
      assert.ok(!ids.has(op.operationId), `${op.operationId} is used twice`);
      ids.add(op.operationId);
      assert.ok(Object.keys(op.responses).length > 0, `${name} has no responses`);
      for (const code of Object.keys(op.responses)) assert.match(code, /^[1-5]\d\d$/);
      const inPath = [...name.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      const declared = (op.parameters ?? []).filter((p) => p.in === "path");
      assert.deepEqual(declared.map((p) => p.name).sort(), inPath.sort(), name);
      assert.ok(declared.every((p) => p.required === true), `${name}: path params are required`);
    }
  });

  await t.step("whose security requirements name a declared scheme", () => {
    const schemes = doc.components.securitySchemes as Record<string, Json>;
    assert.deepEqual(schemes.adminToken, {
      type: "http",
      scheme: "bearer",
      description: "The gateway's `ADMIN_TOKEN`",
    });
    for (const [name, op] of operations(doc)) {
      for (const req of op.security ?? []) {
        for (const scheme of Object.keys(req)) assert.ok(schemes[scheme], `${name}: ${scheme}`);
      }
    }
  });

  await t.step("that has no $schema or $id inside response components", () => {
    for (const [name, schema] of Object.entries(doc.components.schemas)) {
      if (name.startsWith("event.")) continue;
      assert.ok(!("$id" in schema) && !("$schema" in schema), name);
    }
  });
});

Deno.test("openapi.json describes every route the gateway serves", async () => {
  const doc = await fetchDocument();
  assert.deepEqual(operations(doc).map(([name]) => name).sort(), [...ROUTES].sort());
});

Deno.test("openapi.json event schemas are the ones GET /schemas answers", async () => {
  const doc = await fetchDocument();
  const events = eventRoutes({
    ingestor: {} as Ingestor, // GET /schemas never touches it
    limits: { maxBytes: 1024, maxEvents: 1, maxDepth: 4 },
    logger: silentLogger,
  });
  const all = await (await events.request("/schemas")).json() as Record<string, Json>;
  assert.deepEqual(Object.keys(all).sort(), [...EVENT_TYPES].sort());
  for (const type of EVENT_TYPES) {
    assert.deepEqual(doc.components.schemas[eventSchemaName(type)], all[type], type);
    const one = await (await events.request(`/schemas/${type}`)).json();
    assert.deepEqual(doc.components.schemas[eventSchemaName(type)], one, type);
  }
  const union = doc.components.schemas.Event as { oneOf: Json[]; discriminator: Json };
  assert.deepEqual(
    union.oneOf.map((r) => r.$ref),
    EVENT_TYPES.map((t) => `#/components/schemas/${eventSchemaName(t)}`),
  );
  assert.equal(union.discriminator.propertyName, "type");
});

Deno.test("openapi.json POST /events covers JSON, arrays, NDJSON, gzip and every status", async () => {
  const doc = await fetchDocument();
  const op = doc.paths["/events"]!.post as Operation;
  const content = op.requestBody!.content;
  for (const type of ["application/json", "application/x-ndjson", "application/ndjson"]) {
    assert.ok(content[type], type);
  }
  assert.deepEqual(content["application/json"]!.schema, {
    oneOf: [
      { $ref: "#/components/schemas/Event" },
      { type: "array", items: { $ref: "#/components/schemas/Event" } },
    ],
  });
  const encoding = op.parameters!.find((p) => p.name === "Content-Encoding");
  assert.ok((encoding?.schema?.enum as string[]).includes("gzip"));
  for (const code of ["202", "400", "413", "415", "422", "429", "503"]) {
    assert.ok(op.responses[code], `no ${code}`);
  }
  for (const code of ["429", "503"]) assert.ok(op.responses[code]!.headers?.["Retry-After"]);
});

Deno.test("openapi.json query parameters come from the query API's zod schemas", async (t) => {
  const doc = await fetchDocument({ maxQueryLimit: 250 });
  const q = querySchemas(250);
  const names = (path: string) =>
    ((doc.paths[path]!.get as Operation).parameters ?? []).map((p) => p.name).sort();
  const keys = (s: z.ZodObject) => Object.keys(s.shape).sort();

  await t.step("one parameter per schema field", () => {
    assert.deepEqual(names("/events"), keys(q.events));
    assert.deepEqual(names("/alerts"), keys(q.alerts));
    assert.deepEqual(names("/stats"), keys(q.stats));
  });

  await t.step("with the schema's enums and the configured limit", () => {
    const params = (doc.paths["/events"]!.get as Operation).parameters!;
    const type = params.find((p) => p.name === "type")!;
    assert.deepEqual(type.schema!.enum, [...EVENT_TYPES, "other"]);
    assert.match(params.find((p) => p.name === "limit")!.description ?? "", /1 to 250/);
    const severity = (doc.paths["/alerts"]!.get as Operation).parameters!
      .find((p) => p.name === "severity")!;
    assert.deepEqual(severity.schema!.enum, ["low", "medium", "high", "critical"]);
  });
});

Deno.test("openapi.json admin operations need the bearer token and others do not", async () => {
  const doc = await fetchDocument();
  for (const [name, op] of operations(doc)) {
    if (name.includes("/admin/")) {
      assert.deepEqual(op.security, [{ adminToken: [] }], name);
      assert.ok(op.responses["401"], `${name} documents 401`);
    } else assert.equal(op.security, undefined, name);
  }
  assert.deepEqual(doc.security, []);
});

Deno.test("GET /docs serves a page that loads only same-origin assets", async () => {
  const app = docsRoutes();
  const res = await app.request("/docs");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
  assert.equal(res.headers.get("content-security-policy"), DOCS_CSP);
  assert.match(DOCS_CSP, /default-src 'none'/);
  assert.match(DOCS_CSP, /script-src 'self'(;|$)/);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  const html = await res.text();

  // No inline script or style: the CSP would block them.
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i);
  assert.doesNotMatch(html, /<style|\sstyle=/i);
  const urls = [...html.matchAll(/\b(?:src|href|data-spec)="([^"]*)"/g)].map((m) => m[1]!);
  assert.ok(urls.includes("/docs/docs.js") && urls.includes("/docs/docs.css"), urls.join());
  // The icon is an empty data: URL, so the browser asks for no /favicon.ico.
  assert.ok(urls.includes("data:,"), urls.join());
  for (const url of urls.filter((u) => u !== "data:,")) {
    assert.match(url, /^\/(?!\/)/, `${url} is not a same-origin path`);
    const asset = await app.request(url);
    assert.equal(asset.status, 200, url);
  }
  const js = await app.request("/docs/docs.js");
  assert.match(js.headers.get("content-type") ?? "", /^text\/javascript/);
  const css = await app.request("/docs/docs.css");
  assert.match(css.headers.get("content-type") ?? "", /^text\/css/);
  for (const text of [await js.text(), await css.text()]) {
    assert.ok(text.length > 500);
    assert.doesNotMatch(text, /(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}\//i, "no other origin");
    assert.doesNotMatch(text, /@import|\beval\(|new Function/);
  }
});

Deno.test("GET /docs assets revalidate with their ETag", async () => {
  const app = docsRoutes();
  for (const path of ["/docs/docs.js", "/docs/docs.css", "/openapi.json"]) {
    const first = await app.request(path);
    const etag = first.headers.get("etag");
    assert.ok(etag, path);
    await first.body?.cancel();
    const again = await app.request(path, { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304, path);
  }
});

Deno.test("docsRoutes() escapes the title and redirects /docs/", async () => {
  const app = docsRoutes({ title: `<img src=x onerror="alert(1)">` });
  const html = await (await app.request("/docs")).text();
  assert.doesNotMatch(html, /<img/);
  assert.match(html, /&#60;img src=x onerror=&#34;alert\(1\)&#34;&#62;/);
  const doc = await (await app.request("/openapi.json")).json() as OpenApiDocument;
  assert.equal(doc.info.title, `<img src=x onerror="alert(1)">`);
  const redirect = await app.request("/docs/");
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.get("location"), "/docs");
});

Deno.test("openapi.json marks the API-key route groups it is told about", async (t) => {
  const secured = [{ apiKey: [] }, { apiKeyHeader: [] }];
  await t.step("ingest only, signed bodies required", async () => {
    const doc = await fetchDocument({ apiKeyGroups: ["ingest"], signedBodies: "required" });
    for (const [path, method] of [["/events", "post"], ["/score", "post"]] as const) {
      const op = doc.paths[path]![method] as Operation;
      assert.deepEqual(op.security, secured, path);
      assert.ok(op.responses["401"], path);
      const signature = op.parameters?.find((p) => p.name === "X-Signature");
      assert.equal(signature?.required, true, path);
    }
    assert.equal((doc.paths["/events"]!.get as Operation).security, undefined);
    const schemes = doc.components.securitySchemes as Record<string, Json>;
    assert.deepEqual(schemes.apiKeyHeader, {
      type: "apiKey",
      in: "header",
      name: "X-API-Key",
      description: "One of the gateway's `API_KEYS` secrets",
    });
  });
  await t.step("ingest and query, unsigned", async () => {
    const doc = await fetchDocument({ apiKeyGroups: ["ingest", "query"] });
    for (const path of ["/events", "/alerts", "/users/{id}", "/stats"]) {
      assert.deepEqual((doc.paths[path]!.get as Operation).security, secured, path);
    }
    const post = doc.paths["/events"]!.post as Operation;
    assert.equal(post.parameters?.some((p) => p.name === "X-Signature"), false);
    assert.equal((doc.paths["/health"]!.get as Operation).security, undefined);
  });
});
