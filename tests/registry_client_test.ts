/**
 * Proof that npm `@kafkajs/confluent-schema-registry` 4.1.0 works under Deno against a real
 * Confluent-compatible registry: Apicurio Registry 2.4.2 from `scripts/registry.sh`, at
 * `SCHEMA_REGISTRY_URL_TEST` (set by `scripts/test.sh`; default
 * `http://127.0.0.1:${REGISTRY_PORT:-18081}/apis/ccompat/v7`). The registry must be reachable:
 * these tests fail, never skip, without it.
 *
 * Besides the happy paths (JSON Schema and Avro: register → id, Confluent wire format, decode from
 * a fresh client, invalid payloads refused, BACKWARD compatibility enforced) the quirks found are
 * pinned here, so an upgrade of the registry or the client that changes them fails a test:
 * zod's default draft 2020-12 output, JSON Schema `format` keywords, and Apicurio's answer to
 * `GET /config/<subject>`. scripts/registry/README.md explains each.
 *
 * Every run uses subjects of its own (`streamgate-it-<run>-…`): the registry keeps them in memory
 * until it stops.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { z } from "zod";
import { COMPATIBILITY, SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
import { JSON_OPTIONS, REGISTRY_URL, requireRegistry } from "./registry_helpers.ts";
import { IncomingEnvelope, PAYLOADS } from "../shared/schemas.ts";

const RUN = crypto.randomUUID().slice(0, 8);
const CONTENT_TYPE = "application/vnd.schemaregistry.v1+json";
const MAGIC_BYTE = 0;
const HEADER_BYTES = 5; // magic byte + 4-byte big-endian schema id

/** A distinct subject per test and run, named like Confluent's TopicNameStrategy. */
function subject(name: string): string {
  return `streamgate-it-${RUN}-${name}-value`;
}

/** A purchase event as clients send it (shared/schemas.ts). */
const Purchase = IncomingEnvelope.extend({
  type: z.literal("purchase"),
  payload: PAYLOADS.purchase,
});

/**
 * zod → JSON Schema draft-07. zod 4's default is draft 2020-12, which neither the client's default
 * Ajv nor Apicurio 2.4's compatibility checker reads (see the quirk tests below).
 */
function draft7(schema: z.ZodType): string {
  return JSON.stringify(
    z.toJSONSchema(schema, { target: "draft-7", io: "input", unrepresentable: "any" }),
  );
}

function purchaseEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: "0b0e6a4e-3f4e-4b8a-9c1e-2f8d6a1b2c3d",
    type: "purchase",
    user_id: "u-42",
    occurred_at: "2026-12-04T10:00:00.123Z",
    source: "http",
    payload: { amount: 19.99, currency: "EUR", order_id: "o-1", ip: "192.0.2.7" },
    ...overrides,
  };
}

/** One request to the Confluent API, outside the client: status and parsed body. */
async function api(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${REGISTRY_URL}${path}`, {
    method,
    headers: { "content-type": CONTENT_TYPE, accept: CONTENT_TYPE },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

/** The HTTP status of a rejected client call (mappersmith's ResponseError carries it). */
async function statusOfRejection(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
  } catch (err) {
    return (err as { status?: number }).status;
  }
  assert.fail("expected the call to be rejected");
}

function assertWireFormat(buf: Buffer, id: number): void {
  assert.ok(Buffer.isBuffer(buf));
  assert.equal(buf[0], MAGIC_BYTE, "magic byte");
  assert.equal(buf.readInt32BE(1), id, "4-byte big-endian schema id");
}

Deno.test("SchemaRegistry registers a zod JSON Schema and encodes, decodes and refuses payloads", async (t) => {
  await requireRegistry();
  const registry = new SchemaRegistry({ host: REGISTRY_URL }, JSON_OPTIONS);
  const schema = draft7(Purchase);
  const name = subject("json");
  const { id } = await registry.register({ type: SchemaType.JSON, schema }, { subject: name });
  assert.ok(Number.isInteger(id) && id > 0, `schema id ${id}`);

  await t.step("registering the same schema again gives the same id", async () => {
    const again = await registry.register({ type: SchemaType.JSON, schema }, { subject: name });
    assert.equal(again.id, id);
    assert.equal(await registry.getLatestSchemaId(name), id);
  });

  const event = purchaseEvent();
  const encoded = await registry.encode(id, event);

  await t.step("encode() writes magic byte 0, the 4-byte id, then the JSON document", () => {
    assertWireFormat(encoded, id);
    assert.deepEqual(JSON.parse(encoded.subarray(HEADER_BYTES).toString("utf8")), event);
  });

  await t.step("a fresh client decodes it, fetching the schema by id", async () => {
    const fresh = new SchemaRegistry({ host: REGISTRY_URL }, JSON_OPTIONS);
    assert.deepEqual(await fresh.decode(encoded), event);
  });

  await t.step("encode() refuses payloads the schema refuses", async (t) => {
    const invalid: Record<string, Record<string, unknown>> = {
      "missing user_id": purchaseEvent({ user_id: undefined }),
      "negative amount": purchaseEvent({ payload: { amount: -1 } }),
      "unknown top-level field": purchaseEvent({ extra: true }),
      // Formats are ignored (JSON_OPTIONS); zod's patterns beside them still hold.
      "event_id not a UUID": purchaseEvent({ event_id: "not-a-uuid" }),
      "occurred_at without a time zone": purchaseEvent({ occurred_at: "2026-12-04T10:00:00" }),
      "ip neither IPv4 nor IPv6": purchaseEvent({ payload: { amount: 1, ip: "300.1.1.1" } }),
    };
    for (const [label, payload] of Object.entries(invalid)) {
      await t.step(label, async () => {
        // JSON.parse(JSON.stringify()) drops the undefined field, as on the wire.
        const doc = JSON.parse(JSON.stringify(payload));
        await assert.rejects(registry.encode(id, doc), {
          name: "ConfluentSchemaRegistryValidationError",
        });
      });
    }
  });

  await t.step(
    "decode() validates too: a forged message with a valid header is refused",
    async () => {
      const json = JSON.stringify(purchaseEvent({ user_id: "" }));
      const forged = Buffer.alloc(HEADER_BYTES + Buffer.byteLength(json));
      forged.writeUInt8(MAGIC_BYTE, 0);
      forged.writeInt32BE(id, 1);
      forged.write(json, HEADER_BYTES);
      const fresh = new SchemaRegistry({ host: REGISTRY_URL }, JSON_OPTIONS);
      await assert.rejects(fresh.decode(forged), {
        name: "ConfluentSchemaRegistryValidationError",
      });
    },
  );
});

Deno.test("SchemaRegistry.register() sets BACKWARD on a new subject and the registry enforces it", async (t) => {
  await requireRegistry();
  const registry = new SchemaRegistry({ host: REGISTRY_URL }, JSON_OPTIONS);
  const name = subject("json-compat");
  const register = (schema: z.ZodType) =>
    registry.register({ type: SchemaType.JSON, schema: draft7(schema) }, { subject: name });
  const v1 = await register(Purchase);

  await t.step(
    "the first registration stored the subject's level (PUT /config/<subject>)",
    async () => {
      const res = await api("GET", `/config/${name}`);
      assert.equal(res.status, 200);
      assert.equal(res.body.compatibilityLevel, "BACKWARD");
    },
  );

  await t.step("a compatible change (a new optional field) gets a new id", async () => {
    const v2 = await register(Purchase.extend({ channel: z.string().optional() }));
    assert.notEqual(v2.id, v1.id);
  });

  await t.step("incompatible changes are refused with 409", async (t) => {
    const incompatible: Record<string, z.ZodType> = {
      "a new required field": Purchase.extend({ channel: z.string() }),
      "a field changes type": Purchase.extend({ user_id: z.number() }),
      // The object is closed (additionalProperties: false): old events may carry the field.
      "an optional field removed": Purchase.omit({ source: true }),
    };
    for (const [label, schema] of Object.entries(incompatible)) {
      await t.step(label, async () => {
        assert.equal(await statusOfRejection(register(schema)), 409);
      });
    }
    const versions = await api("GET", `/subjects/${name}/versions`);
    assert.deepEqual(versions.body, [1, 2]);
  });

  await t.step("POST /compatibility/… answers is_compatible without registering", async () => {
    const res = await api("POST", `/compatibility/subjects/${name}/versions/latest`, {
      schemaType: "JSON",
      schema: draft7(Purchase.extend({ channel: z.string() })),
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.is_compatible, false);
  });
});

Deno.test("Apicurio quirk: a subject without its own level answers NONE yet obeys the global BACKWARD default", async (t) => {
  await requireRegistry();
  const name = subject("raw");
  const v1 = { schemaType: "JSON", schema: draft7(Purchase) };
  const v2 = { schemaType: "JSON", schema: draft7(Purchase.extend({ channel: z.string() })) };
  // Registered by raw HTTP, as another producer or a CI job might: no subject-level config.
  assert.equal((await api("POST", `/subjects/${name}/versions`, v1)).status, 200);

  await t.step(
    "GET /config/<subject> answers NONE (Confluent: 404, or the global level)",
    async () => {
      const res = await api("GET", `/config/${name}`);
      assert.equal(res.status, 200);
      assert.equal(res.body.compatibilityLevel, "NONE");
    },
  );

  await t.step(
    "the global default (scripts/registry.sh sets BACKWARD) still refuses a change",
    async () => {
      const res = await api("POST", `/subjects/${name}/versions`, v2);
      assert.equal(res.status, 409);
    },
  );

  await t.step("so the client's register() refuses the subject: BACKWARD != NONE", async () => {
    const registry = new SchemaRegistry({ host: REGISTRY_URL }, JSON_OPTIONS);
    await assert.rejects(
      registry.register({ type: SchemaType.JSON, schema: v1.schema }, { subject: name }),
      {
        name: "ConfluentSchemaRegistryCompatibilityError",
        message: /BACKWARD != NONE/,
      },
    );
  });

  await t.step("PUT /config/<subject> first makes the subject usable by the client", async () => {
    const put = await api("PUT", `/config/${name}`, { compatibility: COMPATIBILITY.BACKWARD });
    assert.equal(put.status, 200);
    const registry = new SchemaRegistry({ host: REGISTRY_URL }, JSON_OPTIONS);
    const { id } = await registry.register({ type: SchemaType.JSON, schema: v1.schema }, {
      subject: name,
    });
    assert.ok(id > 0);
    assert.equal(
      await statusOfRejection(
        registry.register({ type: SchemaType.JSON, schema: v2.schema }, { subject: name }),
      ),
      409,
    );
  });

  await t.step(
    "a subject set to NONE still obeys the global rule (Confluent: checks off)",
    async () => {
      assert.equal((await api("PUT", `/config/${name}`, { compatibility: "NONE" })).status, 200);
      assert.equal((await api("GET", `/config/${name}`)).body.compatibilityLevel, "NONE");
      assert.equal((await api("POST", `/subjects/${name}/versions`, v2)).status, 409);
    },
  );
});

Deno.test("quirks of zod's JSON Schema output with this client and this registry", async (t) => {
  await requireRegistry();

  await t.step("the client's default Ajv cannot compile zod's default draft 2020-12", async () => {
    const registry = new SchemaRegistry({ host: REGISTRY_URL }, JSON_OPTIONS);
    const schema = JSON.stringify(
      z.toJSONSchema(Purchase, { io: "input", unrepresentable: "any" }),
    );
    await assert.rejects(
      registry.register({ type: SchemaType.JSON, schema }, {
        subject: subject("draft2020-client"),
      }),
      { name: "ConfluentSchemaRegistryArgumentError", message: /draft\/2020-12\/schema/ },
    );
  });

  await t.step("without JSON options the client's Ajv throws on zod's formats", async () => {
    const registry = new SchemaRegistry({ host: REGISTRY_URL });
    await assert.rejects(
      registry.register({ type: SchemaType.JSON, schema: draft7(Purchase) }, {
        subject: subject("formats"),
      }),
      { name: "ConfluentSchemaRegistryArgumentError", message: /unknown format "uuid"/ },
    );
  });

  await t.step(
    "Apicurio stores a draft 2020-12 schema but fails (500) to check the next version",
    async () => {
      const name = subject("draft2020-registry");
      const as2020 = (schema: z.ZodType) => ({
        schemaType: "JSON",
        schema: JSON.stringify(z.toJSONSchema(schema, { io: "input", unrepresentable: "any" })),
      });
      assert.equal((await api("POST", `/subjects/${name}/versions`, as2020(Purchase))).status, 200);
      // A compatible change, refused: its JSON Schema library does not know the 2020-12 meta-schema.
      const res = await api(
        "POST",
        `/subjects/${name}/versions`,
        as2020(Purchase.extend({ channel: z.string().optional() })),
      );
      assert.equal(res.status, 500);
      assert.match(String(res.body.message), /could not determine version/);
    },
  );
});

Deno.test("SchemaRegistry registers an Avro schema, encodes, decodes and evolves it", async (t) => {
  await requireRegistry();
  const registry = new SchemaRegistry({ host: REGISTRY_URL });
  const name = subject("avro");
  const v1 = {
    type: "record" as const,
    name: "Purchase",
    namespace: "streamgate.test",
    fields: [
      { name: "event_id", type: "string" },
      { name: "user_id", type: "string" },
      { name: "amount", type: "double" },
      { name: "method", type: { type: "enum", name: "Method", symbols: ["card", "paypal"] } },
      { name: "note", type: ["null", "string"], default: null },
    ],
  };
  const register = (schema: unknown) =>
    registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject: name });
  const { id } = await register(v1);
  const event = { event_id: "e-1", user_id: "u-42", amount: 19.99, method: "card", note: "gift" };
  const encoded = await registry.encode(id, event);

  await t.step("encode() writes magic byte 0, the 4-byte id, then Avro binary", () => {
    assertWireFormat(encoded, id);
    // Avro binary: strings are length-prefixed, no field names; far shorter than the JSON.
    assert.ok(encoded.length - HEADER_BYTES < JSON.stringify(event).length / 2);
  });

  await t.step("a fresh client decodes it", async () => {
    const fresh = new SchemaRegistry({ host: REGISTRY_URL });
    // avsc returns an instance of the record's generated class: compare its fields.
    assert.deepEqual({ ...(await fresh.decode(encoded)) }, event);
  });

  await t.step("encode() refuses a payload that does not match", async () => {
    await assert.rejects(registry.encode(id, { ...event, amount: "19.99" }), {
      name: "ConfluentSchemaRegistryValidationError",
    });
    await assert.rejects(registry.encode(id, { ...event, method: "cash" }), {
      name: "ConfluentSchemaRegistryValidationError",
    });
  });

  const v2 = {
    ...v1,
    fields: [...v1.fields, { name: "currency", type: "string", default: "USD" }],
  };

  await t.step("BACKWARD refuses a new field without a default (409)", async () => {
    const bad = { ...v1, fields: [...v1.fields, { name: "items", type: "int" }] };
    assert.equal(await statusOfRejection(register(bad)), 409);
  });

  await t.step("a new field with a default is accepted; old messages read with it", async () => {
    const { id: id2 } = await register(v2);
    assert.notEqual(id2, id);
    const fresh = new SchemaRegistry({ host: REGISTRY_URL });
    const read = await fresh.decode(encoded, { [SchemaType.AVRO]: { readerSchema: v2 } });
    assert.deepEqual({ ...read }, { ...event, currency: "USD" });
  });
});
