/**
 * `GET /openapi.json` (the OpenAPI 3.1 document, see `openapi/openapi.ts`) and `GET /docs`, an interactive
 * page that lists the operations and sends requests from forms built from the document.
 *
 * The page is a few KB of plain JavaScript and CSS in `docs_assets/`, imported as text so they are
 * part of the module graph: they ship inside a `deno compile` binary with no `--include`, and no
 * page loads anything from another origin. The script is `examples.js` (schemas to example bodies)
 * and `docs.js` (the page) joined into one module, so the page still loads one script. A strict Content-Security-Policy holds it to that.
 * (swagger-ui-dist or Scalar would add 1.5–3 MB to every binary and need `style-src
 * 'unsafe-inline'`.)
 *
 * @module
 */
import { Hono } from "hono";
import DOCS_CSS from "./docs_assets/docs.css" with { type: "text" };
import DOCS_JS from "./docs_assets/docs.js" with { type: "text" };
import EXAMPLES_JS from "./docs_assets/examples.js" with { type: "text" };
import { openApiDocument, type OpenApiOptions } from "./openapi/openapi.ts";

/** Where the document is served; the page reads it from here. */
export const OPENAPI_PATH = "/openapi.json";
/** The interactive page. */
export const DOCS_PATH = "/docs";
const SCRIPT_PATH = "/docs/docs.js";
const STYLE_PATH = "/docs/docs.css";
/**
 * The page's module: `examples.js` first, because `docs.js` ends with a top-level `await` after
 * which it uses what `examples.js` defines.
 */
const SCRIPT = `${EXAMPLES_JS}\n${DOCS_JS}`;

/**
 * Only this origin's scripts, styles and requests; no inline code, no frames, no forms posting
 * elsewhere. The page builds its DOM with DOM calls, so it needs nothing looser.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Options of {@link docsRoutes}: those of the document it serves. */
export type DocsRoutesOptions = OpenApiOptions;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A strong ETag of a text (FNV-1a; the assets are fixed for the life of the process). */
function etagOf(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `"${h.toString(36)}-${text.length.toString(36)}"`;
}

function page(title: string): string {
  const t = escapeHtml(title);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${t} API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${STYLE_PATH}">
<script type="module" src="${SCRIPT_PATH}"></script>
</head>
<body>
<main id="app" data-spec="${OPENAPI_PATH}"><p>Loading the ${t} API description…</p></main>
<noscript><p>This page needs JavaScript. The API description is at
<a href="${OPENAPI_PATH}">${OPENAPI_PATH}</a>.</p></noscript>
</body>
</html>
`;
}

/** The documentation routes. The document is built once, here. */
export function docsRoutes(options: DocsRoutesOptions = {}): Hono {
  const app = new Hono();
  const document = JSON.stringify(openApiDocument(options));
  const html = page(options.title ?? "streamgate");
  const assets: [path: string, body: string, type: string][] = [
    [SCRIPT_PATH, SCRIPT, "text/javascript; charset=utf-8"],
    [STYLE_PATH, DOCS_CSS, "text/css; charset=utf-8"],
    [OPENAPI_PATH, document, "application/json; charset=utf-8"],
  ];

  app.get(DOCS_PATH, (c) => {
    c.header("Content-Security-Policy", DOCS_CSP);
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    c.header("Cache-Control", "no-cache");
    return c.html(html);
  });
  app.get(`${DOCS_PATH}/`, (c) => c.redirect(DOCS_PATH, 301));

  for (const [path, body, type] of assets) {
    const etag = etagOf(body);
    app.get(path, (c) => {
      c.header("ETag", etag);
      // Revalidate every time: a new binary serves new assets under the same paths.
      c.header("Cache-Control", "no-cache");
      c.header("X-Content-Type-Options", "nosniff");
      if (c.req.header("if-none-match") === etag) return c.body(null, 304);
      c.header("Content-Type", type);
      return c.body(body, 200);
    });
  }
  return app;
}
