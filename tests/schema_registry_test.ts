/**
 * Schema Registry support against a real registry (Apicurio Registry 2.4.2 from
 * `scripts/registry.sh`, at `SCHEMA_REGISTRY_URL_TEST`, which `scripts/test.sh` sets) and, for the
 * process-level tests, the real broker (`scripts/kafka.sh`):
 *
 * - `SchemaRegistryClient` on its own: registration, framing read back by a plain registry
 *   client, decoding of the client's JSON Schema and Avro records, the reasons a record is refused,
 *   a registry that is down (start, lookups) and a refused schema change.
 * - The gateway as a process: it registers its subjects and frames what it produces; framed JSON
 *   Schema and Avro records from another producer reach bronze beside bare JSON, bad ones reach the
 *   DLQ with reasons; an incompatible change stops the start with exit 2; a registry that is down
 *   at start or during a run.
 *
 * The registry is made to vanish with a TCP proxy in front of it (`fixtures/tcp_proxy.ts`), so the
 * shared registry keeps running for everyone else. Every test uses subjects and topics of its own.
 * These tests fail, never skip, without the registry or the broker.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { fileURLToPath } from "node:url";
import { SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
import { JSON_OPTIONS, REGISTRY_URL, requireRegistry } from "./registry_helpers.ts";
import {
  type RecordFramer,
  SchemaRegistryClient,
  SchemaRegistryRefusedError,
  valueSubject,
} from "../pipeline/kafka/schema_registry.ts";
import type { DecodedValue, LogRecord } from "../pipeline/durable_log.ts";
import { z } from "zod";
import { DRAFT_7, eventRecordJsonSchema, IncomingEnvelope, PAYLOADS } from "../shared/schemas.ts";
import { recordEventId } from "../shared/ids.ts";
import { alertJsonSchema } from "../shared/alert.ts";
import { silentLogger } from "../shared/logger.ts";
import { TcpProxy } from "./fixtures/tcp_proxy.ts";
import {
  assertCleanStop,
  clientEvent,
  postEvents,
  startGateway,
  waitFor,
} from "./gateway_process.ts";
import { produce, readTopic, setup, teardown } from "./kafka_helpers.ts";
import { readBronze } from "./lake_helpers.ts";

const REGISTRY = new URL(REGISTRY_URL);
const RUN = crypto.randomUUID().slice(0, 8);
const encoder = new TextEncoder();

/** A plain registry client, as any other producer or consumer of the topics would use. */
function plainClient(): SchemaRegistry {
  return new SchemaRegistry({ host: REGISTRY_URL }, JSON_OPTIONS);
}

function client(url = REGISTRY_URL, retryMs = 2000): SchemaRegistryClient {
  return new SchemaRegistryClient({
    url,
    compatibility: "BACKWARD",
    timeoutMs: 2000,
    retryMs,
    logger: silentLogger,
    backoffMs: { first: 50, most: 250 },
  });
}

/** A proxy in front of the registry, off until started; its Confluent API URL. */
async function registryProxy(): Promise<{ proxy: TcpProxy; url: string }> {
  const proxy = await TcpProxy.create({ hostname: REGISTRY.hostname, port: Number(REGISTRY.port) });
  return { proxy, url: `http://127.0.0.1:${proxy.port}${REGISTRY.pathname}` };
}

function record(value: Uint8Array | Buffer, offset = 0): LogRecord {
  const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return { topic: "t", partition: 0, offset, timestampMs: Date.now(), value: bytes };
}

/** A purchase event as the topic carries it (what `encodeEnvelope` writes). */
function purchase(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: crypto.randomUUID(),
    user_id: "u-42",
    occurred_at: "2026-12-04T10:00:00.123Z",
    received_at: "2026-12-04T10:00:01.000Z",
    source: "http",
    payload: { amount: 19.99, currency: "EUR", order_id: "o-1", ip: "192.0.2.7" },
    type: "purchase",
    ...overrides,
  };
}

/** An Avro writer schema for purchase events, as an Avro producer would register it. */
const AVRO_PURCHASE = {
  type: "record",
  name: "Purchase",
  namespace: "streamgate.test",
  fields: [
    { name: "event_id", type: ["null", "string"], default: null },
    { name: "type", type: "string" },
    { name: "user_id", type: "string" },
    { name: "occurred_at", type: "string" },
    { name: "source", type: ["null", "string"], default: null },
    {
      name: "payload",
      type: {
        type: "record",
        name: "PurchasePayload",
        fields: [
          { name: "amount", type: "double" },
          { name: "currency", type: "string" },
          { name: "order_id", type: ["null", "string"], default: null },
        ],
      },
    },
  ],
};

/** A JSON Schema another producer registers for its purchase events (closed, draft-07). */
const JSON_PURCHASE = JSON.stringify({
  $schema: "http://json-schema.org/draft-07/schema#",
  type: "object",
  properties: {
    type: { const: "purchase" },
    user_id: { type: "string", minLength: 1 },
    occurred_at: { type: "string" },
    payload: {
      type: "object",
      properties: { amount: { type: "number", minimum: 0 }, currency: { type: "string" } },
      required: ["amount"],
    },
  },
  required: ["type", "user_id", "occurred_at", "payload"],
});

/** Magic byte 0, a 4-byte id, then `payload`: a framed value made by hand. */
function forge(id: number, payload: Uint8Array | string): Uint8Array {
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  const out = new Uint8Array(5 + body.byteLength);
  new DataView(out.buffer).setInt32(1, id);
  out.set(body, 5);
  return out;
}

function codes(d: DecodedValue | undefined): string[] {
  assert.ok(d && !d.ok, `expected a refusal, got ${JSON.stringify(d)}`);
  return d.issues.map((i) => i.code);
}

Deno.test("SchemaRegistryClient registers the events and alerts schemas and frames records a plain client decodes", async (t) => {
  await requireRegistry();
  const sr = client();
  const events = `sr-${RUN}-frame-events`, alerts = `sr-${RUN}-frame-alerts`;
  await sr.register([
    { topic: events, schema: eventRecordJsonSchema("reject") },
    { topic: alerts, schema: alertJsonSchema() },
  ], () => assert.fail("refused"));
  assert.equal(sr.probe().state, "ok");
  const framer = sr.framer(events);
  assert.equal(framer.unavailable(), undefined);

  await t.step("the subjects are <topic>-value, at the client's BACKWARD level", async () => {
    const plain = plainClient();
    const id = await plain.getLatestSchemaId(valueSubject(events));
    const value = framer.frame(Buffer.from(JSON.stringify(purchase())));
    assert.equal(value[0], 0);
    assert.equal(value.readInt32BE(1), id);
    const res = await fetch(`${REGISTRY_URL}/config/${valueSubject(events)}`);
    assert.equal((await res.json()).compatibilityLevel, "BACKWARD");
  });

  await t.step(
    "a plain client decodes (and validates) every event type the gateway writes",
    async () => {
      const plain = plainClient();
      const samples = [
        purchase(),
        { ...purchase(), type: "login", payload: { ip: "2001:db8::1", country: "DE" } },
        { ...purchase(), type: "page_view", payload: { page: "/home", extra: [1, 2] } },
        {
          ...purchase(),
          type: "sale",
          payload: { product_id: "p", quantity: 2, unit_price: 1, amount: 2, currency: "USD" },
        },
      ];
      for (const e of samples) {
        assert.deepEqual(await plain.decode(framer.frame(Buffer.from(JSON.stringify(e)))), e);
      }
      // A record the schema does not describe is refused by the plain client's validation.
      const wrong = framer.frame(Buffer.from(JSON.stringify(purchase({ type: "teleport" }))));
      await assert.rejects(plain.decode(wrong), { name: "ConfluentSchemaRegistryValidationError" });
    },
  );

  await t.step("an alert record decodes too", async () => {
    const alert = {
      alert_id: "a-1",
      user_id: "u",
      raised_at: "2026-12-04T10:00:00.000Z",
      trigger_event_id: "e",
      trigger_type: "purchase",
      occurred_at: "2026-12-04T10:00:00.000Z",
      rules: [{ name: "high_value_purchase", severity: "medium", reason: "purchase of 5000" }],
      rule_score: 0.5,
      llm_score: null,
      fraud_score: 0.5,
      severity: "medium",
      llm_disagrees: false,
      llm: { status: "disabled", reason: "no LLM configured" },
      window: { events: 1, types: { purchase: 1 }, first_at: "x", last_at: "y" },
      event_ids: ["e"],
    };
    const framed = sr.framer(alerts).frame(Buffer.from(JSON.stringify(alert)));
    assert.deepEqual(await plainClient().decode(framed), alert);
  });

  await t.step("registering the same schemas again (a restart) gives the same ids", async () => {
    const again = client();
    await again.register([{ topic: events, schema: eventRecordJsonSchema("reject") }], () => {});
    const a = again.framer(events).frame(Buffer.from("{}"));
    assert.equal(a.readInt32BE(1), framer.frame(Buffer.from("{}")).readInt32BE(1));
    again.close();
  });
  sr.close();
});

Deno.test("SchemaRegistryClient decodes framed JSON Schema and Avro records of other producers", async (t) => {
  await requireRegistry();
  const plain = plainClient();
  const { id: jsonId } = await plain.register({ type: SchemaType.JSON, schema: JSON_PURCHASE }, {
    subject: `sr-${RUN}-decode-json-value`,
  });
  const { id: avroId } = await plain.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(AVRO_PURCHASE) },
    { subject: `sr-${RUN}-decode-streamgate.test.Purchase` },
  );
  const sr = client();
  const decode = (values: (Uint8Array | Buffer)[]) =>
    sr.decoder.decode(values.map((v, i) => record(v, i)));

  await t.step("bare JSON is left alone: undefined for the chunk", async () => {
    assert.equal(await decode([encoder.encode(JSON.stringify(purchase()))]), undefined);
  });

  await t.step("JSON Schema: the client's encoding decodes to the same document", async () => {
    const e = {
      type: "purchase",
      user_id: "u",
      occurred_at: "2026-12-04T10:00:00Z",
      payload: { amount: 3 },
    };
    const [d] = (await decode([await plain.encode(jsonId, e)]))!;
    assert.deepEqual(d, { ok: true, value: e });
  });

  await t.step("Avro: records become plain JSON, null fields are left out", async () => {
    const e = {
      event_id: null,
      type: "purchase",
      user_id: "u-avro",
      occurred_at: "2026-12-04T10:00:00Z",
      source: "pos",
      payload: { amount: 12.5, currency: "EUR", order_id: null },
    };
    const [d] = (await decode([await plain.encode(avroId, e)]))!;
    assert.ok(d?.ok);
    assert.equal(Object.getPrototypeOf(d.value), Object.prototype, "a plain object");
    assert.deepEqual(d.value, {
      type: "purchase",
      user_id: "u-avro",
      occurred_at: "2026-12-04T10:00:00Z",
      source: "pos",
      payload: { amount: 12.5, currency: "EUR" },
    });
  });

  await t.step("keywords of other tools (Kafka Connect's connect.*) are ignored", async () => {
    const schema = JSON.stringify({
      type: "object",
      properties: { amount: { type: "number", minimum: 0, "connect.index": 0 } },
    });
    const res = await fetch(`${REGISTRY_URL}/subjects/sr-${RUN}-decode-connect-value/versions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ schemaType: "JSON", schema }),
    });
    const { id } = await res.json() as { id: number };
    const out = (await decode([forge(id, '{"amount":2}'), forge(id, '{"amount":-2}')]))!;
    assert.deepEqual(out[0], { ok: true, value: { amount: 2 } });
    assert.deepEqual(codes(out[1]), ["schema_mismatch"]);
  });

  await t.step("a chunk mixes bare and framed records, in order", async () => {
    const bare = encoder.encode("{}");
    const json = await plain.encode(jsonId, {
      type: "purchase",
      user_id: "u",
      occurred_at: "x",
      payload: { amount: 1 },
    });
    const out = (await decode([bare, json, bare]))!;
    assert.equal(out.length, 3);
    assert.equal(out[0], undefined);
    assert.ok(out[1]?.ok);
    assert.equal(out[2], undefined);
  });

  await t.step("refusals carry a reason", async (t) => {
    await t.step(
      "a JSON payload that does not match its schema: the path and the rule",
      async () => {
        const [d] = (await decode([
          forge(
            jsonId,
            JSON.stringify({
              type: "purchase",
              user_id: "u",
              occurred_at: "x",
              payload: { amount: -1 },
            }),
          ),
        ]))!;
        assert.deepEqual(codes(d), ["schema_mismatch"]);
        assert.ok(d && !d.ok);
        assert.equal(d.issues[0]!.path, "payload.amount");
        assert.match(d.issues[0]!.message, new RegExp(`id ${jsonId}.*>= 0`));
      },
    );
    await t.step("JSON that does not parse, and bytes that are not UTF-8", async () => {
      const out = (await decode([
        forge(jsonId, "{nope"),
        forge(jsonId, new Uint8Array([0x7b, 0xff, 0x7d])),
      ]))!;
      assert.deepEqual(out.map(codes), [["invalid_json"], ["invalid_json"]]);
      assert.ok(out[1] && !out[1].ok && /UTF-8/.test(out[1].issues[0]!.message));
    });
    await t.step("an Avro payload that does not decode (truncated, trailing bytes)", async () => {
      const good = await plain.encode(avroId, {
        type: "purchase",
        user_id: "u",
        occurred_at: "x",
        payload: { amount: 1, currency: "EUR" },
      });
      const out = (await decode([
        good.subarray(0, good.length - 3),
        new Uint8Array([...good, 1, 2]),
      ]))!;
      assert.deepEqual(out.map(codes), [["schema_mismatch"], ["schema_mismatch"]]);
      assert.ok(
        out[0] && !out[0].ok && out[0].issues[0]!.message.includes(`Avro schema (id ${avroId})`),
      );
    });
    await t.step("an id the registry does not know", async () => {
      const [d] = (await decode([forge(987_654_321, "{}")]))!;
      assert.deepEqual(codes(d), ["schema_unknown"]);
      assert.ok(d && !d.ok && d.issues[0]!.message.includes("987654321"));
    });
    await t.step("a Protobuf schema: not read", async () => {
      const res = await fetch(`${REGISTRY_URL}/subjects/sr-${RUN}-decode-proto-value/versions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          schemaType: "PROTOBUF",
          schema: 'syntax = "proto3"; message M { string a = 1; }',
        }),
      });
      const { id } = await res.json() as { id: number };
      const [d] = (await decode([forge(id, new Uint8Array([0, 0x0a, 0]))]))!;
      assert.deepEqual(codes(d), ["schema_unsupported"]);
    });
    await t.step("a value shorter than the 5-byte header", async () => {
      const [d] = (await decode([new Uint8Array([0, 0, 1])]))!;
      assert.deepEqual(codes(d), ["invalid_framing"]);
    });
  });
  sr.close();
});

Deno.test("SchemaRegistryClient with the registry down: registration waits in the background, lookups wait then give up", async (t) => {
  await requireRegistry();
  const { proxy, url } = await registryProxy();
  const topic = `sr-${RUN}-down`;
  // An id the registry has, that the client below has not cached.
  const { id } = await plainClient().register({ type: SchemaType.JSON, schema: JSON_PURCHASE }, {
    subject: `sr-${RUN}-down-json-value`,
  });
  const e = { type: "purchase", user_id: "u", occurred_at: "x", payload: { amount: 1 } };
  const framed = forge(id, JSON.stringify(e));
  const sr = client(url, 1500);
  let framer: RecordFramer;
  try {
    await t.step("down at start: register() resolves; probe and framer report it", async () => {
      await sr.register(
        [{ topic, schema: eventRecordJsonSchema("reject") }],
        () => assert.fail("refused"),
      );
      const probe = sr.probe();
      assert.equal(probe.state, "down");
      assert.match(probe.detail!, /the schema registry does not answer: .*refused/i);
      framer = sr.framer(topic);
      assert.match(framer.unavailable()!, /has not registered subject/);
      assert.throws(() => framer.frame(Buffer.from("{}")), /has not registered subject/);
    });

    await t.step(
      "a lookup gives up after retryMs: schema_registry_unavailable, heartbeats meanwhile",
      async () => {
        let beats = 0;
        const t0 = Date.now();
        const [d] = (await sr.decoder.decode([record(framed)], () => {
          beats++;
          return Promise.resolve();
        }))!;
        const ms = Date.now() - t0;
        assert.deepEqual(codes(d), ["schema_registry_unavailable"]);
        assert.ok(ms >= 1400 && ms < 5000, `gave up after ${ms} ms`);
        assert.ok(beats >= 3, `${beats} heartbeats`);
      },
    );

    await t.step(
      "the registry comes back: registration completes, a waiting lookup succeeds",
      async () => {
        const waiting = sr.decoder.decode([record(framed)]);
        await new Promise((r) => setTimeout(r, 300));
        proxy.start();
        const [d] = (await waiting)!;
        assert.deepEqual(d, { ok: true, value: e });
        assert.ok(await waitFor(() => Promise.resolve(sr.probe().state === "ok"), 5000));
        assert.equal(framer.unavailable(), undefined);
        assert.equal(framer.frame(Buffer.from("{}"))[0], 0);
      },
    );

    await t.step("a cached schema needs no registry", async () => {
      await proxy.stop();
      const [d] = (await sr.decoder.decode([record(framed)]))!;
      assert.deepEqual(d, { ok: true, value: e });
    });

    await t.step("close() ends a waiting lookup: the chunk fails, unresolved", async () => {
      const other = (await plainClient().register({
        type: SchemaType.JSON,
        schema: JSON_PURCHASE.replace('"minimum":0', '"minimum":1'),
      }, { subject: `sr-${RUN}-down-json2-value` })).id;
      const slow = client(url, 60_000);
      const waiting = slow.decoder.decode([record(forge(other, "{}"))]);
      await new Promise((r) => setTimeout(r, 200));
      slow.close();
      await assert.rejects(waiting, /closed/);
    });
  } finally {
    sr.close();
    await proxy.stop();
  }
});

Deno.test("SchemaRegistryClient refuses to start on an incompatible change, another compatibility level or no registry API", async (t) => {
  await requireRegistry();
  const topic = `sr-${RUN}-evolve`;
  // What an earlier release registered: every event type, and (UNKNOWN_TYPES=other) any other.
  const first = client();
  await first.register([{ topic, schema: eventRecordJsonSchema("other") }], () => {});
  first.close();

  await t.step("dropping a member of the union is refused with the registry's reason", async () => {
    const sr = client();
    await assert.rejects(
      sr.register([{ topic, schema: eventRecordJsonSchema("reject") }], () => {}),
      (err: Error) => {
        assert.ok(err instanceof SchemaRegistryRefusedError);
        assert.match(err.message, new RegExp(`subject "${topic}-value" as incompatible`));
        assert.match(err.message, /COMBINED_TYPE_ONE_OF_SIZE_DECREASED/);
        return true;
      },
    );
    sr.close();
  });

  await t.step("a subject at another level than SCHEMA_REGISTRY_COMPATIBILITY", async () => {
    const subject = valueSubject(topic);
    await fetch(`${REGISTRY_URL}/config/${subject}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ compatibility: "NONE" }),
    }).then((r) => r.body?.cancel());
    const sr = client();
    await assert.rejects(
      sr.register([{ topic, schema: eventRecordJsonSchema("other") }], () => {}),
      /has compatibility NONE in the schema registry and SCHEMA_REGISTRY_COMPATIBILITY is BACKWARD/,
    );
    sr.close();
  });

  await t.step("a URL without the registry API, also with nothing to register", async () => {
    for (const topics of [[{ topic, schema: eventRecordJsonSchema("other") }], []]) {
      const sr = client(`${REGISTRY.origin}/not-the-api`);
      await assert.rejects(sr.register(topics, () => {}), /no schema registry API at/);
      sr.close();
    }
  });

  await t.step("credentials the registry refuses (401), sent as basic auth", async () => {
    const seen: (string | null)[] = [];
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      seen.push(req.headers.get("authorization"));
      return new Response('{"error_code":401,"message":"Unauthorized"}', { status: 401 });
    });
    const sr = new SchemaRegistryClient({
      url: `http://127.0.0.1:${server.addr.port}/apis/ccompat/v7`,
      auth: { username: "svc", password: "wrong" },
      compatibility: "BACKWARD",
      timeoutMs: 2000,
      retryMs: 1000,
      logger: silentLogger,
    });
    try {
      await assert.rejects(
        sr.register([{ topic, schema: eventRecordJsonSchema("other") }], () => {}),
        /refused the credentials \(HTTP 401\): check SCHEMA_REGISTRY_AUTH/,
      );
      assert.deepEqual(seen, [`Basic ${btoa("svc:wrong")}`]);
    } finally {
      sr.close();
      await server.shutdown();
    }
  });
});

/**
 * The events topic's schema as `eventRecordJsonSchema()` builds it, from payloads and an envelope
 * a test changes: an earlier or later release.
 */
function releaseSchema(
  payloads: Record<string, z.ZodType> = PAYLOADS,
  envelope: z.ZodObject = IncomingEnvelope,
  unknownTypes: "reject" | "other" = "reject",
): Record<string, unknown> {
  const { type, ...fields } = envelope.shape;
  const members = Object.entries(payloads).map(([t, payload]) =>
    z.strictObject({ type: z.literal(t), ...fields, payload })
  ) as unknown as [z.ZodObject, ...z.ZodObject[]];
  const schema = z.toJSONSchema(z.discriminatedUnion("type", members), DRAFT_7) as {
    oneOf: unknown[];
  };
  if (unknownTypes === "other") {
    const { $schema: _, ...other } = z.toJSONSchema(
      z.strictObject({ type, ...fields }),
      DRAFT_7,
    ) as {
      $schema?: string;
      properties: Record<string, Record<string, unknown>>;
    };
    other.properties.type = { ...other.properties.type, not: { enum: Object.keys(payloads) } };
    schema.oneOf.push(other);
  }
  return schema;
}

Deno.test("the evolution rules of docs/schema-registry.md hold on the registry (BACKWARD)", async (t) => {
  await requireRegistry();
  assert.deepEqual(releaseSchema(), eventRecordJsonSchema("reject"), "the helper builds the same");
  assert.deepEqual(
    releaseSchema(PAYLOADS, IncomingEnvelope, "other"),
    eventRecordJsonSchema("other"),
  );
  const P = PAYLOADS;
  const signup = z.looseObject({ plan: z.string().optional() });
  const cases: [string, Record<string, unknown>, Record<string, unknown>, boolean][] = [
    [
      "an optional payload field",
      releaseSchema(),
      releaseSchema({ ...P, purchase: P.purchase.extend({ coupon: z.string().optional() }) }),
      true,
    ],
    [
      "an optional envelope field",
      releaseSchema(),
      releaseSchema(P, IncomingEnvelope.extend({ tenant: z.string().optional() })),
      true,
    ],
    ["a new event type", releaseSchema(), releaseSchema({ ...P, signup }), true],
    [
      "a larger max",
      releaseSchema(),
      releaseSchema({
        ...P,
        purchase: P.purchase.extend({ amount: z.number().nonnegative().max(1e13) }),
      }),
      true,
    ],
    [
      "a new enum value",
      releaseSchema(),
      releaseSchema({
        ...P,
        login: P.login.extend({
          method: z.enum(["password", "sso", "otp", "token", "passkey"]).optional(),
        }),
      }),
      true,
    ],
    [
      "a required field",
      releaseSchema(),
      releaseSchema({ ...P, purchase: P.purchase.extend({ coupon: z.string() }) }),
      false,
    ],
    [
      "a type change",
      releaseSchema(),
      releaseSchema({ ...P, purchase: P.purchase.extend({ amount: z.string() }) }),
      false,
    ],
    [
      "a smaller max",
      releaseSchema(),
      releaseSchema({
        ...P,
        purchase: P.purchase.extend({ amount: z.number().nonnegative().max(1e11) }),
      }),
      false,
    ],
    [
      "a removed enum value",
      releaseSchema(),
      releaseSchema({
        ...P,
        login: P.login.extend({ method: z.enum(["password", "sso"]).optional() }),
      }),
      false,
    ],
    [
      "a removed optional field",
      releaseSchema(),
      releaseSchema({ ...P, purchase: P.purchase.omit({ items: true }) }),
      false,
    ],
    [
      "a removed event type",
      releaseSchema(),
      releaseSchema(Object.fromEntries(Object.entries(P).filter(([k]) => k !== "sale"))),
      false,
    ],
    [
      "UNKNOWN_TYPES other → reject",
      eventRecordJsonSchema("other"),
      eventRecordJsonSchema("reject"),
      false,
    ],
    [
      "a new event type with UNKNOWN_TYPES=other",
      eventRecordJsonSchema("other"),
      releaseSchema({ ...P, signup }, IncomingEnvelope, "other"),
      false,
    ],
  ];
  for (const [i, [label, before, after, accepted]] of cases.entries()) {
    await t.step(`${label}: ${accepted ? "accepted" : "refused"}`, async () => {
      const topic = `sr-${RUN}-rule-${i}`;
      const first = client();
      await first.register([{ topic, schema: before }], () => {});
      first.close();
      const next = client();
      const registered = next.register([{ topic, schema: after }], () => {});
      if (accepted) await registered;
      else await assert.rejects(registered, SchemaRegistryRefusedError);
      next.close();
    });
  }
});

// ---------------------------------------------------------------------------------------------
// The gateway as a process, on the real broker.

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

/** Runs main.ts until it exits (it must, within `timeoutMs`): its exit code and stderr. */
async function runToExit(
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN],
    env: { PORT: "0", HOSTNAME: "127.0.0.1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** `GET /ready`: its status and what it says of the schema registry. */
async function ready(
  url: string,
): Promise<{ status: number; state: string | undefined; detail: string }> {
  const res = await fetch(`${url}/ready`);
  const body = await res.json() as {
    dependencies: Record<string, { state: string; detail?: string } | undefined>;
  };
  const registry = body.dependencies["schema registry"];
  return { status: res.status, state: registry?.state, detail: registry?.detail ?? "" };
}

function asBuffer(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

Deno.test("gateway with SCHEMA_REGISTRY_URL: registers its subjects, frames events and alerts, keeps dead letters' bytes", async () => {
  await requireRegistry();
  const s = await setup("sr-gw");
  const gw = await startGateway({
    ...s.env,
    SCHEMA_REGISTRY_URL: REGISTRY_URL,
    FRAUD_ALERT_SCORE: "0.4", // one purchase over 1000 raises an alert
  });
  try {
    const events = Array.from({ length: 60 }, (_, i) => clientEvent(i));
    events.push(clientEvent(0, { user_id: `big-spender-${RUN}`, payload: { amount: 5000 } }));
    const bad = { type: "login", user_id: "", occurred_at: "yesterday" };
    const res = await postEvents(gw.url, [...events, bad]);
    assert.equal(res.status, 202);
    assert.equal(res.body.accepted, events.length);

    const plain = plainClient();
    const eventsId = await plain.getLatestSchemaId(valueSubject(s.events));
    const records = await readTopic(s.events, events.length);
    assert.equal(records.length, events.length);
    const decoded = new Map<string, Record<string, unknown>>();
    for (const r of records) {
      assert.equal(r.value[0], 0, "magic byte");
      assert.equal(asBuffer(r.value).readInt32BE(1), eventsId, "the registered id");
      const e = await plain.decode(asBuffer(r.value));
      decoded.set(e.event_id, e);
    }
    for (const e of events) {
      const got = decoded.get(e.event_id as string)!;
      assert.equal(got.user_id, e.user_id);
      assert.equal(got.type, e.type);
      assert.equal(got.source, "http");
    }

    // The worker half of the same process reads its own framed records into bronze.
    assert.ok(
      await waitFor(
        async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= events.length,
        60_000,
      ),
    );
    const rows = await readBronze(s.engine, s.env.LAKE_DIR!);
    assert.deepEqual(
      new Set(rows.map((r) => r.event_id)),
      new Set(events.map((e) => e.event_id)),
    );

    const [alert] = await readTopic(s.alerts, 1);
    assert.equal(alert!.value[0], 0);
    assert.equal(
      asBuffer(alert!.value).readInt32BE(1),
      await plain.getLatestSchemaId(valueSubject(s.alerts)),
    );
    const a = await plain.decode(asBuffer(alert!.value));
    assert.equal(a.user_id, `big-spender-${RUN}`);
    assert.equal(alert!.headers["alert.id"], a.alert_id);

    // Dead letters are the original bytes, unframed.
    const [letter] = await readTopic(s.dlq, 1);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(letter!.value)), bad);

    const r = await ready(gw.url);
    assert.equal(r.status, 200);
    assert.equal(r.state, "ok");
    assert.match(r.detail, new RegExp(`${s.events}-value id`));
  } finally {
    await assertCleanStop(gw);
    await teardown(s);
  }
});

Deno.test("gateway with SCHEMA_REGISTRY_URL: framed JSON Schema and Avro records of other producers reach bronze beside bare JSON; bad ones reach the DLQ with reasons", async () => {
  await requireRegistry();
  const s = await setup("sr-in", 1);
  const plain = plainClient();
  const { id: jsonId } = await plain.register({ type: SchemaType.JSON, schema: JSON_PURCHASE }, {
    subject: valueSubject(s.events),
  });
  const { id: avroId } = await plain.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(AVRO_PURCHASE) },
    { subject: `${s.events}-streamgate.test.Purchase` },
  );
  const now = new Date().toISOString();
  const json = (i: number, payload: Record<string, unknown> = { amount: i, currency: "EUR" }) =>
    plain.encode(jsonId, { type: "purchase", user_id: `json-${i}`, occurred_at: now, payload });
  const avro = (i: number) =>
    plain.encode(avroId, {
      event_id: null,
      type: "purchase",
      user_id: `avro-${i}`,
      occurred_at: now,
      source: null,
      payload: { amount: 12.5, currency: "USD", order_id: i % 2 ? `o-${i}` : null },
    });
  const bare = (i: number) =>
    encoder.encode(JSON.stringify(clientEvent(i, { user_id: `bare-${i}` })));
  const truncated = (await avro(99)).subarray(0, 20);
  const values: Uint8Array[] = [
    await json(0), // 0
    await avro(1), // 1
    bare(2), // 2
    forge(987_654_321, "{}"), // 3: unknown id
    forge(
      jsonId,
      JSON.stringify({ type: "purchase", user_id: "u", occurred_at: now, payload: { amount: -5 } }),
    ), // 4: not its schema
    truncated, // 5: Avro that does not decode
    await json(6, { amount: 6, currency: "euro" }), // 6: its schema holds, ours does not
    new Uint8Array([0, 0, 0]), // 7: shorter than a header
    await json(8),
    await avro(9),
    bare(10),
  ].map((v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  await produce(s.events, values);
  const gw = await startGateway({
    ...s.env,
    ROLE: "worker",
    FRAUD_SCORING: "false",
    SCHEMA_REGISTRY_URL: REGISTRY_URL,
  });
  try {
    assert.ok(
      await waitFor(async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= 6, 60_000),
    );
    const rows = await readBronze(s.engine, s.env.LAKE_DIR!);
    assert.deepEqual(rows.map((r) => r.log_offset), [0, 1, 2, 8, 9, 10]);
    assert.deepEqual(rows.map((r) => r.user_id), [
      "json-0",
      "avro-1",
      "bare-2",
      "json-8",
      "avro-9",
      "bare-10",
    ]);
    const avroRow = rows[1]!;
    assert.deepEqual(JSON.parse(avroRow.payload), {
      amount: 12.5,
      currency: "USD",
      order_id: "o-1",
    });
    assert.equal(avroRow.event_id, recordEventId(s.events, 0, 1), "no event_id: from the position");

    const dlq = await readTopic(s.dlq, 5);
    assert.equal(dlq.length, 5);
    dlq.sort((a, b) => Number(a.headers["dlq.offset"]) - Number(b.headers["dlq.offset"]));
    assert.deepEqual(dlq.map((m) => m.headers["dlq.offset"]), ["3", "4", "5", "6", "7"]);
    const reasons = dlq.map((m) => JSON.parse(m.headers["dlq.reasons"]!));
    assert.deepEqual(reasons.map((r) => r[0].code), [
      "schema_unknown",
      "schema_mismatch",
      "schema_mismatch",
      "invalid_format",
      "invalid_framing",
    ]);
    assert.match(reasons[0][0].message, /no schema id 987654321/);
    assert.equal(reasons[1][0].path, "payload.amount");
    assert.match(reasons[2][0].message, /Avro schema/);
    assert.equal(reasons[3][0].path, "payload.currency");
    for (const [i, m] of dlq.entries()) {
      assert.deepEqual(
        m.value,
        values[Number(m.headers["dlq.offset"])],
        `DLQ value ${i}: original bytes`,
      );
    }
  } finally {
    await assertCleanStop(gw);
    await teardown(s);
  }
});

Deno.test("gateway with SCHEMA_REGISTRY_URL: an incompatible schema change stops the start with exit 2 and the registry's reason", async () => {
  await requireRegistry();
  const s = await setup("sr-evolve", 1);
  try {
    // An earlier release that also took `amount` as a string: the current one narrows it.
    const earlier = releaseSchema({
      ...PAYLOADS,
      purchase: PAYLOADS.purchase.extend({ amount: z.union([z.number(), z.string()]) }),
    });
    const sr = client();
    await sr.register([{ topic: s.events, schema: earlier }], () => {});
    sr.close();

    const { code, stderr } = await runToExit({ ...s.env, SCHEMA_REGISTRY_URL: REGISTRY_URL });
    assert.equal(code, 2, stderr);
    assert.match(stderr, new RegExp(`subject "${s.events}-value" as incompatible`));
    assert.match(stderr, /COMBINED_TYPE_SUBSCHEMA_NOT_COMPATIBLE/);
    assert.match(stderr, /adding optional fields/);
  } finally {
    await teardown(s);
  }
});

Deno.test("gateway with the registry down at start: /ready and POST /events answer 503 until it comes up, then events flow framed", async () => {
  await requireRegistry();
  const s = await setup("sr-down", 1);
  const { proxy, url } = await registryProxy();
  const gw = await startGateway({ ...s.env, SCHEMA_REGISTRY_URL: url });
  try {
    const down = await ready(gw.url);
    assert.equal(down.status, 503);
    assert.equal(down.state, "down");
    assert.match(down.detail, /does not answer/);
    const refused = await postEvents(gw.url, [clientEvent(1)]);
    assert.equal(refused.status, 503);

    proxy.start();
    assert.ok(await waitFor(async () => (await ready(gw.url)).status === 200, 20_000));
    const events = Array.from({ length: 20 }, (_, i) => clientEvent(i));
    assert.equal((await postEvents(gw.url, events)).status, 202);
    const records = await readTopic(s.events, events.length);
    assert.ok(records.every((r) => r.value[0] === 0));
    assert.ok(
      await waitFor(
        async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).length >= events.length,
        60_000,
      ),
    );
  } finally {
    await assertCleanStop(gw);
    await proxy.stop();
    await teardown(s);
  }
});

Deno.test("gateway with the registry down during a run: a record whose schema is not cached waits, then reaches bronze or, past SCHEMA_REGISTRY_RETRY_MS, the DLQ", async () => {
  await requireRegistry();
  const s = await setup("sr-blip", 1);
  const plain = plainClient();
  // Two schemas the worker has never seen (a fresh id each).
  const schema = (n: number) =>
    JSON_PURCHASE.replace('"minLength":1', `"minLength":1,"maxLength":${n}`);
  const { id: first } = await plain.register({
    type: SchemaType.JSON,
    schema: schema(1000 + Number.parseInt(RUN, 16) % 1000),
  }, {
    subject: valueSubject(s.events),
  });
  const { id: second } = await plain.register({
    type: SchemaType.JSON,
    schema: schema(3000 + Number.parseInt(RUN, 16) % 1000),
  }, {
    subject: valueSubject(s.events),
  });
  const now = new Date().toISOString();
  const framed = (id: number, user: string) =>
    forge(
      id,
      JSON.stringify({ type: "purchase", user_id: user, occurred_at: now, payload: { amount: 1 } }),
    );
  const bare = (user: string) => encoder.encode(JSON.stringify(clientEvent(0, { user_id: user })));
  const { proxy, url } = await registryProxy();
  proxy.start();
  const gw = await startGateway({
    ...s.env,
    ROLE: "worker",
    FRAUD_SCORING: "false",
    SCHEMA_REGISTRY_URL: url,
    SCHEMA_REGISTRY_RETRY_MS: "8000",
    LAKE_FLUSH_INTERVAL_MS: "200",
  });
  const users = async () => (await readBronze(s.engine, s.env.LAKE_DIR!)).map((r) => r.user_id);
  try {
    await produce(s.events, [bare("warm-up")]);
    assert.ok(await waitFor(async () => (await users()).includes("warm-up"), 30_000));

    // A blip shorter than SCHEMA_REGISTRY_RETRY_MS: the partition waits, nothing is lost.
    await proxy.stop();
    await produce(s.events, [framed(first, "during-blip"), bare("after-blip")]);
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual(await users(), ["warm-up"], "the partition waits for the registry");
    proxy.start();
    assert.ok(await waitFor(async () => (await users()).includes("after-blip"), 30_000));
    assert.deepEqual(await users(), ["warm-up", "during-blip", "after-blip"]);

    // An outage longer than it: the record goes to the DLQ with the reason, the partition moves.
    await proxy.stop();
    await produce(s.events, [framed(second, "during-outage"), bare("after-outage")]);
    assert.ok(await waitFor(async () => (await users()).includes("after-outage"), 40_000));
    const [letter] = await readTopic(s.dlq, 1);
    const reasons = JSON.parse(letter!.headers["dlq.reasons"]!);
    assert.equal(reasons[0].code, "schema_registry_unavailable");
    assert.match(reasons[0].message, new RegExp(`schema id ${second} within 8000 ms`));
    assert.ok(!(await users()).includes("during-outage"));
  } finally {
    await assertCleanStop(gw);
    await proxy.stop();
    await teardown(s);
  }
});
