// Examples for the API page at GET /docs: reads the OpenAPI document's schemas (local `$ref`s,
// discriminators) and builds request bodies from them. No DOM here.
//
// routes/docs.ts serves this file and docs.js as one module, /docs/docs.js, this file first (its
// definitions must be ready before docs.js's top-level await returns). docs.js uses variants,
// takesArray and sampleBody.

// deno-lint-ignore-file no-unused-vars -- what docs.js uses looks unused to a linter

function refName(ref) {
  return ref.replace(/^#\/components\/schemas\//, "");
}

/** Follows a local `$ref`; other schemas come back as they are. */
function resolve(spec, schema, seen = new Set()) {
  if (!schema || typeof schema !== "object" || typeof schema.$ref !== "string") return schema;
  if (seen.has(schema.$ref)) return {};
  seen.add(schema.$ref);
  return resolve(spec, spec.components?.schemas?.[refName(schema.$ref)] ?? {}, seen);
}

/** The discriminator values a schema (or the schemas it is made of) offers, e.g. event types. */
function variants(spec, schema, depth = 0) {
  const s = resolve(spec, schema);
  if (!s || depth > 4) return null;
  if (s.discriminator?.mapping) {
    return { property: s.discriminator.propertyName, mapping: s.discriminator.mapping };
  }
  for (const sub of [...(s.oneOf ?? []), ...(s.anyOf ?? []), s.items, s["x-item-schema"]]) {
    const v = sub && variants(spec, sub, depth + 1);
    if (v) return v;
  }
  return null;
}

/** Whether a body schema also takes an array of its items (so a count makes sense). */
function takesArray(spec, schema) {
  const s = resolve(spec, schema);
  if (!s) return false;
  if (s.type === "array") return true;
  return (s.oneOf ?? s.anyOf ?? []).some((x) => resolve(spec, x)?.type === "array");
}

const STRING_HINTS = {
  user_id: "u-1",
  page: "/home",
  endpoint: "/api/v1/items",
  path: "/reports/q1.pdf",
  ip: "203.0.113.7",
};

/**
 * A value that satisfies `schema`, built from its required parts: fresh timestamps and UUIDs, so
 * a generated event is accepted now. `choice` picks the discriminator value (an event type).
 */
function sample(spec, schema, choice, name = "", depth = 0) {
  if (depth > 12) return null;
  let s = resolve(spec, schema);
  if (!s || typeof s !== "object") return null;
  if (s.discriminator?.mapping && choice && s.discriminator.mapping[choice]) {
    s = resolve(spec, { $ref: s.discriminator.mapping[choice] });
  }
  if ("const" in s) return s.const;
  if (Array.isArray(s.enum)) return s.enum[0];
  if ("default" in s) return s.default;
  if (Array.isArray(s.examples) && s.examples.length > 0) return s.examples[0];
  const alt = s.oneOf ?? s.anyOf;
  if (Array.isArray(alt) && alt.length > 0) {
    const objectFirst = alt.find((x) => resolve(spec, x)?.type !== "array") ?? alt[0];
    return sample(spec, objectFirst, choice, name, depth + 1);
  }
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== "null") : s.type;
  switch (type ?? (s.properties ? "object" : undefined)) {
    case "object": {
      const out = {};
      for (const key of s.required ?? []) {
        out[key] = sample(spec, s.properties?.[key] ?? {}, choice, key, depth + 1);
      }
      return out;
    }
    case "array":
      return s.minItems > 0 ? [sample(spec, s.items, choice, name, depth + 1)] : [];
    case "integer":
    case "number":
      return s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + 1 : 1);
    case "boolean":
      return false;
    case "string": {
      if (s.format === "date-time") return new Date().toISOString();
      if (s.format === "uuid") return crypto.randomUUID();
      if (s.format === "ipv4") return "203.0.113.7";
      if (s.format === "ipv6") return "2001:db8::7";
      let v = STRING_HINTS[name] ?? (name.endsWith("_id") ? `${name.slice(0, -3)}-1` : "example");
      if (s.maxLength !== undefined) v = v.slice(0, s.maxLength);
      return v;
    }
    default:
      return null;
  }
}

/** The body text for a media type: JSON, or NDJSON lines for the streaming types. */
function sampleBody(spec, mediaType, media, choice, count) {
  if (media["x-item-schema"]) {
    return Array.from(
      { length: Math.max(1, count) },
      () => JSON.stringify(sample(spec, media["x-item-schema"], choice)),
    ).join("\n") + "\n";
  }
  if (!/json/.test(mediaType)) return typeof media.example === "string" ? media.example : "";
  const schema = media.schema ?? {};
  const value = count > 1 && takesArray(spec, schema)
    ? Array.from({ length: count }, () => sample(spec, schema, choice))
    : sample(spec, schema, choice);
  return JSON.stringify(value, null, 2);
}
