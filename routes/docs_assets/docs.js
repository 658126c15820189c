// The interactive API page at GET /docs: reads the OpenAPI document, lists the operations, and
// sends requests from forms built from their parameters and request bodies. Plain browser
// JavaScript with no dependencies, served by the gateway itself (`routes/docs.ts`); the page's
// Content-Security-Policy allows only same-origin scripts, styles and requests, so everything is
// built with DOM calls, never HTML strings or inline styles.
//
// Served after examples.js, in the same module (see routes/docs.ts): variants, takesArray and
// sampleBody come from there.

const METHODS = ["get", "post", "put", "patch", "delete"];
/** Response headers worth showing first; the others follow. */
const KEY_HEADERS = ["content-type", "retry-after", "www-authenticate", "x-request-id"];

const root = document.getElementById("app");
/** The admin bearer token: kept in memory only, never stored. */
let bearerToken = "";

/** Creates an element: `h("a", { href: "#x", class: "c" }, "text", child)`. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c !== undefined && c !== null && c !== false) {
      el.append(c instanceof Node ? c : String(c));
    }
  }
  return el;
}

/** Text with `code spans` (the only Markdown the document uses), as DOM nodes. */
function prose(text) {
  if (!text) return [];
  return String(text).split(/(`[^`]+`)/).map((part) =>
    part.startsWith("`") && part.endsWith("`") && part.length > 1
      ? h("code", {}, part.slice(1, -1))
      : part
  );
}

/** A JSON Schema shown as text, with `$ref`s as links to the schema list. */
function schemaView(schema) {
  const pre = h("pre", { class: "schema" });
  const text = JSON.stringify(schema, null, 2) ?? "";
  let last = 0;
  for (const m of text.matchAll(/"#\/components\/schemas\/([^"]+)"/g)) {
    pre.append(text.slice(last, m.index));
    pre.append(h("a", { href: `#schema-${m[1]}` }, m[0]));
    last = m.index + m[0].length;
  }
  pre.append(text.slice(last));
  return pre;
}

function paramInput(param, id) {
  const schema = param.schema ?? {};
  if (Array.isArray(schema.enum)) {
    return h(
      "select",
      { id, name: param.name },
      param.required ? null : h("option", { value: "" }, "—"),
      schema.enum.map((v) => h("option", { value: String(v) }, String(v))),
    );
  }
  const hint = schema.format ?? (schema.type === "integer" ? "integer" : schema.type) ?? "";
  return h("input", {
    id,
    name: param.name,
    type: "text",
    autocomplete: "off",
    spellcheck: false,
    placeholder: param.example ?? hint,
    required: param.required,
  });
}

/** A shell-quoted curl command equivalent to a request (the token left as `$TOKEN`). */
function curlCommand(method, url, headers, body, gzip) {
  const q = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;
  const parts = [`curl -i -X ${method.toUpperCase()} ${q(url)}`];
  for (const [k, v] of Object.entries(headers)) {
    // The token itself stays out of anything that gets copied around.
    parts.push(
      k.toLowerCase() === "authorization" ? `-H "${k}: Bearer $TOKEN"` : `-H ${q(`${k}: ${v}`)}`,
    );
  }
  if (body === undefined) return parts.join(" \\\n  ");
  if (!gzip) return [...parts, `--data-binary ${q(body)}`].join(" \\\n  ");
  return `printf '%s' ${q(body)} | gzip | ` + [...parts, "--data-binary @-"].join(" \\\n  ");
}

async function gzipBytes(text) {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function responseView(res, ms, text) {
  const shown = [...res.headers].sort(([a], [b]) => {
    const ia = KEY_HEADERS.indexOf(a), ib = KEY_HEADERS.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : 1);
  });
  let body = text;
  if ((res.headers.get("content-type") ?? "").includes("json")) {
    try {
      body = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // Not JSON after all: show it as sent.
    }
  }
  const ok = res.status < 400 ? "ok" : res.status < 500 ? "client" : "server";
  return h(
    "div",
    { class: "response" },
    h(
      "p",
      { class: `status status-${ok}` },
      `${res.status} ${res.statusText}`,
      h("span", { class: "muted" }, ` · ${Math.round(ms)} ms · ${text.length} bytes`),
    ),
    h("dl", { class: "headers" }, shown.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("pre", { class: "body" }, body),
  );
}

function operationView(spec, base, path, method, op) {
  const opId = op.operationId ?? `${method}-${path}`;
  const params = [...(spec.paths[path].parameters ?? []), ...(op.parameters ?? [])];
  const secured = (op.security ?? spec.security ?? []).some((r) => Object.keys(r).length > 0);
  const form = h("form", { class: "try", novalidate: true });
  const inputs = paramFields(form, params, opId);
  const bodyInputs = bodyField(form, spec, op.requestBody?.content ?? {}, opId);

  const output = h("div", { class: "output", "aria-live": "polite" });
  const curl = h("pre", { class: "curl", hidden: true });
  const send = h("button", { type: "submit" }, "Send");
  form.append(h("div", { class: "actions" }, send), curl, output);
  const request = { base, path, method, secured, inputs, bodyInputs, curl, send, output };
  form.addEventListener("submit", (e) => sendRequest(e, request));

  const responses = responsesList(op);
  return h(
    "details",
    { class: "op", id: `op-${opId}` },
    h(
      "summary",
      {},
      h("span", { class: `method method-${method}` }, method.toUpperCase()),
      h("span", { class: "path" }, path),
      h("span", { class: "summary" }, op.summary ?? ""),
      secured ? h("span", { class: "lock", title: "Sends the bearer token" }, "token") : null,
    ),
    h(
      "div",
      { class: "op-body" },
      op.description ? h("p", {}, prose(op.description)) : null,
      form,
      h("h4", {}, "Responses"),
      h("ul", { class: "responses" }, responses),
    ),
  );
}

/** One labelled input per parameter, appended to `form`; returns each with its parameter. */
function paramFields(form, params, opId) {
  return params.map((p, i) => {
    const id = `${opId}-p${i}`;
    const input = paramInput(p, id);
    form.append(
      h(
        "div",
        { class: "field" },
        h(
          "label",
          { for: id },
          h("span", { class: "pname" }, p.name),
          p.required ? h("span", { class: "req", title: "required" }, "*") : null,
          h("span", { class: "pin" }, p.in),
        ),
        input,
        p.description ? h("p", { class: "hint" }, prose(p.description)) : null,
      ),
    );
    return { param: p, input };
  });
}

/**
 * The request body field of an operation with a `requestBody`: a media type, for a discriminated
 * union a variant, for bodies that take several events a count, and an editable example.
 */
function bodyField(form, spec, content, opId) {
  const mediaTypes = Object.keys(content);
  let typeSelect, bodyArea, variantSelect, countInput;
  if (mediaTypes.length > 0) {
    const id = `${opId}-body`;
    typeSelect = h(
      "select",
      { id: `${id}-type` },
      mediaTypes.map((t) => h("option", { value: t }, t)),
    );
    bodyArea = h("textarea", { id, rows: 12, spellcheck: false, class: "code" });
    const v = variants(
      spec,
      content[mediaTypes[0]].schema ?? content[mediaTypes[0]]["x-item-schema"],
    );
    if (v) {
      variantSelect = h(
        "select",
        { id: `${id}-variant`, title: v.property },
        Object.keys(v.mapping).map((k) => h("option", { value: k }, k)),
      );
    }
    const multi = mediaTypes.some((t) =>
      content[t]["x-item-schema"] || takesArray(spec, content[t].schema)
    );
    if (multi) {
      countInput = h("input", { type: "number", min: 1, max: 1000, value: 1, class: "count" });
    }
    const fill = () => {
      const t = typeSelect.value;
      const count = countInput ? Number(countInput.value) || 1 : 1;
      bodyArea.value = sampleBody(spec, t, content[t], variantSelect?.value, count);
    };
    for (const el of [typeSelect, variantSelect, countInput]) el?.addEventListener("change", fill);
    fill();
    form.append(
      h(
        "div",
        { class: "field" },
        h(
          "div",
          { class: "body-controls" },
          h("label", { for: `${id}-type` }, "Body"),
          typeSelect,
          variantSelect ? [h("label", { for: `${id}-variant` }, v.property), variantSelect] : null,
          countInput ? [h("label", {}, "count", countInput)] : null,
          h("button", { type: "button", class: "secondary", onclick: fill }, "New example"),
        ),
        bodyArea,
      ),
    );
  }
  return { typeSelect, bodyArea };
}

/** Sends the operation's request from the form's values and shows the response. */
async function sendRequest(
  e,
  { base, path, method, secured, inputs, bodyInputs, curl, send, output },
) {
  e.preventDefault();
  const { typeSelect, bodyArea } = bodyInputs;
  let url = path;
  const query = new URLSearchParams();
  const headers = {};
  const missing = [];
  for (const { param, input } of inputs) {
    const value = input.value.trim();
    if (value === "") {
      if (param.required) missing.push(param.name);
      continue;
    }
    if (param.in === "path") url = url.replace(`{${param.name}}`, encodeURIComponent(value));
    else if (param.in === "query") query.append(param.name, value);
    else if (param.in === "header") headers[param.name] = value;
  }
  if (missing.length > 0) {
    output.replaceChildren(
      h("p", { class: "status status-client" }, `Fill in: ${missing.join(", ")}`),
    );
    return;
  }
  const full = new URL(`${base}${url}${String(query) ? `?${query}` : ""}`, location.href);
  let body;
  let gzip = false;
  if (bodyArea) {
    headers["Content-Type"] = typeSelect.value;
    const enc = (headers["Content-Encoding"] ?? "").toLowerCase();
    gzip = enc === "gzip" || enc === "x-gzip";
    body = bodyArea.value;
  }
  if (secured && bearerToken) headers.Authorization = `Bearer ${bearerToken}`;
  curl.textContent = curlCommand(method, full.href, headers, body, gzip);
  curl.hidden = false;
  send.disabled = true;
  output.replaceChildren(h("p", { class: "muted" }, "Sending…"));
  const started = performance.now();
  try {
    const res = await fetch(full, {
      method: method.toUpperCase(),
      headers,
      body: body === undefined ? undefined : gzip ? await gzipBytes(body) : body,
    });
    const text = await res.text();
    output.replaceChildren(responseView(res, performance.now() - started, text));
  } catch (err) {
    output.replaceChildren(h("p", { class: "status status-server" }, `Request failed: ${err}`));
  } finally {
    send.disabled = false;
  }
}

/** The operation's responses: status, description, headers, and each media type's schema. */
function responsesList(op) {
  return Object.entries(op.responses ?? {}).map(([code, r]) => {
    const media = Object.entries(r.content ?? {});
    const headers = Object.keys(r.headers ?? {});
    return h(
      "li",
      {},
      h("span", { class: `code code-${code[0]}` }, code),
      " ",
      prose(r.description),
      headers.length > 0
        ? h("span", { class: "muted" }, ` · headers: ${headers.join(", ")}`)
        : null,
      media.map(([t, m]) =>
        h(
          "details",
          { class: "media" },
          h("summary", {}, t),
          m.schema ? schemaView(m.schema) : null,
        )
      ),
    );
  });
}

function render(spec) {
  const base = new URL(spec.servers?.[0]?.url ?? "/", location.href).pathname.replace(/\/$/, "");
  const ops = [];
  for (const [path, item] of Object.entries(spec.paths ?? {})) {
    for (const method of METHODS) if (item[method]) ops.push({ path, method, op: item[method] });
  }
  const tags = [...(spec.tags ?? []).map((t) => t.name)];
  for (const { op } of ops) {
    for (const t of op.tags ?? ["other"]) if (!tags.includes(t)) tags.push(t);
  }
  const tagInfo = Object.fromEntries((spec.tags ?? []).map((t) => [t.name, t.description]));

  const filter = h("input", {
    type: "search",
    placeholder: "Filter operations",
    "aria-label": "Filter operations",
  });
  const token = h("input", {
    type: "password",
    placeholder: "Bearer token: an API key, or the admin token",
    autocomplete: "off",
    "aria-label": "Bearer token",
    oninput: (e) => bearerToken = e.target.value.trim(),
  });
  const sections = tags.map((tag) => {
    const list = ops.filter(({ op }) => (op.tags ?? ["other"]).includes(tag));
    return h(
      "section",
      { class: "tag", id: `tag-${tag}` },
      h("h2", {}, tag, tagInfo[tag] ? h("span", { class: "muted" }, ` — ${tagInfo[tag]}`) : null),
      list.map(({ path, method, op }) => operationView(spec, base, path, method, op)),
    );
  });
  filter.addEventListener("input", () => {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const el of root.querySelectorAll("details.op")) {
      const text = el.querySelector("summary").textContent.toLowerCase();
      el.hidden = !words.every((w) => text.includes(w));
    }
  });
  const schemas = Object.entries(spec.components?.schemas ?? {}).map(([name, s]) =>
    h(
      "details",
      { class: "schema-item", id: `schema-${name}` },
      h("summary", {}, name),
      schemaView(s),
    )
  );

  root.replaceChildren(
    h(
      "header",
      {},
      h("h1", {}, spec.info?.title ?? "API", h("span", { class: "version" }, spec.info?.version)),
      h("p", {}, prose(spec.info?.description)),
      h(
        "p",
        { class: "muted" },
        `OpenAPI ${spec.openapi} · `,
        h("a", { href: root.dataset.spec }, root.dataset.spec),
      ),
      h("div", { class: "toolbar" }, filter, token),
    ),
    ...sections,
    h("section", { class: "tag", id: "schemas" }, h("h2", {}, "Schemas"), schemas),
  );
  // Opening a link to a schema opens its <details>.
  addEventListener("hashchange", () => {
    const el = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (el instanceof HTMLDetailsElement) el.open = true;
  });
}

try {
  const res = await fetch(root.dataset.spec, { headers: { accept: "application/json" } });
  if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
  render(await res.json());
} catch (err) {
  root.replaceChildren(h("p", { class: "status status-server" }, `Cannot load the API: ${err}`));
}
