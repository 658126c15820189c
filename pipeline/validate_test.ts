// Tests of event validation (validate.ts) against the event model (schemas.ts).
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { allJsonSchemas, EVENT_TYPES, IncomingEnvelope, OTHER_TYPE } from "../shared/schemas.ts";
import {
  type EventContext,
  type Issue,
  type Validated,
  validateEvent,
  type ValidationOptions,
} from "./validate.ts";
import { recordEventId } from "../shared/ids.ts";
import { isoToMicros, microsToIso } from "../shared/time.ts";
import { MINIMAL_PAYLOADS } from "./testing.ts";

const RECEIVED = "2024-05-01T12:00:00.000Z";
const RECEIVED_MS = Date.parse(RECEIVED);
const GENERATED_ID = "00000000-0000-4000-8000-000000000001";
const DAY_MS = 86_400_000;

const OPTS: ValidationOptions = {
  unknownTypes: "reject",
  maxPastMs: 30 * DAY_MS,
  maxFutureMs: 3_600_000,
};

function ctx(overrides: Partial<EventContext> = {}): EventContext {
  return {
    receivedAtMs: RECEIVED_MS,
    trustReceivedAt: false,
    source: "http",
    eventId: () => GENERATED_ID,
    ...overrides,
  };
}

function event(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: "login", user_id: "u-1", occurred_at: "2024-05-01T11:59:00Z", ...overrides };
}

function accepted(result: Validated) {
  assert.ok(result.ok, `expected the event to be accepted, got ${JSON.stringify(result)}`);
  return result.event;
}

function rejected(result: Validated): Issue[] {
  assert.ok(!result.ok, `expected the event to be rejected, got ${JSON.stringify(result)}`);
  assert.ok(result.issues.length > 0);
  return result.issues;
}

Deno.test("validateEvent() accepts a minimal valid event of every type", async (t) => {
  assert.deepEqual(Object.keys(MINIMAL_PAYLOADS).sort(), [...EVENT_TYPES].sort());
  for (const type of EVENT_TYPES) {
    await t.step(type, () => {
      const e = accepted(
        validateEvent(event({ type, payload: MINIMAL_PAYLOADS[type] }), ctx(), OPTS),
      );
      assert.equal(e.type, type);
      assert.equal(e.event_type, type);
      assert.equal(e.user_id, "u-1");
      for (const [key, value] of Object.entries(MINIMAL_PAYLOADS[type])) {
        assert.deepEqual(e.payload[key], value, `payload.${key}`);
      }
    });
  }
});

Deno.test("validateEvent() rejects an empty payload for types with required fields", async (t) => {
  for (const type of EVENT_TYPES.filter((t) => Object.keys(MINIMAL_PAYLOADS[t]).length > 0)) {
    await t.step(type, () => {
      const issues = rejected(validateEvent(event({ type, payload: {} }), ctx(), OPTS));
      for (const issue of issues) assert.match(issue.path, /^payload\./);
    });
  }
});

Deno.test("validateEvent() fills in defaults", async (t) => {
  await t.step("event_id comes from ctx.eventId", () => {
    let calls = 0;
    const e = accepted(validateEvent(
      event(),
      ctx({
        eventId: () => {
          calls++;
          return GENERATED_ID;
        },
      }),
      OPTS,
    ));
    assert.equal(e.event_id, GENERATED_ID);
    assert.equal(calls, 1);
  });
  await t.step('currency is "USD" when left out', () => {
    for (const type of ["purchase", "refund", "sale"] as const) {
      const e = accepted(
        validateEvent(event({ type, payload: MINIMAL_PAYLOADS[type] }), ctx(), OPTS),
      );
      assert.equal(e.payload.currency, "USD", type);
    }
    const eur = accepted(validateEvent(
      event({ type: "purchase", payload: { amount: 1, currency: "EUR" } }),
      ctx(),
      OPTS,
    ));
    assert.equal(eur.payload.currency, "EUR");
  });
  await t.step("source comes from ctx unless the event names one", () => {
    assert.equal(
      accepted(validateEvent(event(), ctx({ source: "kafka:x" }), OPTS)).source,
      "kafka:x",
    );
    assert.equal(
      accepted(validateEvent(event({ source: "mobile-app" }), ctx(), OPTS)).source,
      "mobile-app",
    );
  });
  await t.step("payload defaults to {}", () => {
    assert.deepEqual(accepted(validateEvent(event(), ctx(), OPTS)).payload, {});
  });
  await t.step("unknown payload fields are kept", () => {
    const e = accepted(validateEvent(event({ payload: { custom: { x: 1 } } }), ctx(), OPTS));
    assert.deepEqual(e.payload.custom, { x: 1 });
  });
});

Deno.test("validateEvent() sets received_at from ctx unless trusted and present", async (t) => {
  const sent = "2024-05-01T13:30:00.5+01:30";
  await t.step("not trusted: ctx wins over the event's own", () => {
    const e = accepted(validateEvent(event({ received_at: sent }), ctx(), OPTS));
    assert.equal(e.received_at, "2024-05-01T12:00:00.000000Z");
  });
  await t.step("trusted and present: the event's own, in UTC", () => {
    const e = accepted(
      validateEvent(event({ received_at: sent }), ctx({ trustReceivedAt: true }), OPTS),
    );
    assert.equal(e.received_at, "2024-05-01T12:00:00.500000Z");
  });
  await t.step("trusted but absent: ctx", () => {
    const e = accepted(validateEvent(event(), ctx({ trustReceivedAt: true }), OPTS));
    assert.equal(e.received_at, "2024-05-01T12:00:00.000000Z");
  });
  await t.step("trusted received_at is what the time window is checked against", () => {
    const old = { occurred_at: "2020-01-01T00:00:00Z", received_at: "2020-01-01T00:01:00Z" };
    accepted(validateEvent(event(old), ctx({ trustReceivedAt: true }), OPTS));
    const issues = rejected(validateEvent(event(old), ctx(), OPTS));
    assert.equal(issues[0]!.code, "too_old");
  });
});

Deno.test("validateEvent() keeps a given event_id, lower-cased", () => {
  const e = accepted(
    validateEvent(event({ event_id: "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11" }), ctx(), OPTS),
  );
  assert.equal(e.event_id, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  const issues = rejected(validateEvent(event({ event_id: "not-a-uuid" }), ctx(), OPTS));
  assert.deepEqual(issues.map((i) => i.path), ["event_id"]);
});

Deno.test("validateEvent() handles an unknown type per options.unknownTypes", async (t) => {
  const raw = event({ type: "lottery_win", payload: { anything: [1, 2] } });
  await t.step('"reject": one issue on path "type"', () => {
    const issues = rejected(validateEvent(raw, ctx(), OPTS));
    assert.deepEqual(issues.map((i) => [i.path, i.code]), [["type", "unknown_type"]]);
    assert.match(issues[0]!.message, /lottery_win/);
  });
  await t.step('"other": kept as type "other" with event_type preserved', () => {
    const e = accepted(validateEvent(raw, ctx(), { ...OPTS, unknownTypes: "other" }));
    assert.equal(e.type, OTHER_TYPE);
    assert.equal(e.event_type, "lottery_win");
    assert.deepEqual(e.payload, { anything: [1, 2] });
  });
  await t.step('"other" still checks the envelope and the time window', () => {
    const other = { ...OPTS, unknownTypes: "other" as const };
    rejected(validateEvent({ ...raw, user_id: "" }, ctx(), other));
    rejected(validateEvent({ ...raw, occurred_at: "2000-01-01T00:00:00Z" }, ctx(), other));
  });
});

Deno.test("validateEvent() rejects type names that are not safe identifiers", async (t) => {
  for (const type of ["../x", "login;drop", "login; DROP TABLE events", "Login", "", "1x", "a/b"]) {
    await t.step(JSON.stringify(type), () => {
      for (const unknownTypes of ["reject", "other"] as const) {
        const issues = rejected(validateEvent(event({ type }), ctx(), { ...OPTS, unknownTypes }));
        assert.ok(issues.some((i) => i.path === "type"), JSON.stringify(issues));
      }
    });
  }
  await t.step("longer than 64 characters", () => {
    const issues = rejected(validateEvent(event({ type: "a".repeat(65) }), ctx(), OPTS));
    assert.equal(issues[0]!.path, "type");
  });
});

Deno.test("validateEvent() reports issues with dotted paths", async (t) => {
  await t.step("payload.amount", () => {
    const issues = rejected(
      validateEvent(event({ type: "purchase", payload: { amount: "12" } }), ctx(), OPTS),
    );
    assert.deepEqual(issues.map((i) => i.path), ["payload.amount"]);
    assert.equal(issues[0]!.code, "invalid_type");
  });
  await t.step("several payload fields at once", () => {
    const issues = rejected(validateEvent(
      event({
        type: "purchase",
        payload: { amount: -1, currency: "usd", ip: "999.1.1.1", country: "Germany" },
      }),
      ctx(),
      OPTS,
    ));
    assert.deepEqual(
      issues.map((i) => i.path).sort(),
      ["payload.amount", "payload.country", "payload.currency", "payload.ip"],
    );
  });
  await t.step("envelope fields", () => {
    const issues = rejected(validateEvent({ type: "login", payload: [] }, ctx(), OPTS));
    assert.deepEqual(issues.map((i) => i.path).sort(), ["occurred_at", "payload", "user_id"]);
  });
  await t.step("a value that is not an object is one issue on the whole event", () => {
    for (const raw of [null, 42, "login", [event()]]) {
      const issues = rejected(validateEvent(raw, ctx(), OPTS));
      assert.equal(issues[0]!.path, "", JSON.stringify(raw));
    }
  });
});

Deno.test("validateEvent() rejects extra envelope keys", () => {
  const issues = rejected(validateEvent(event({ amount: 10, userId: "x" }), ctx(), OPTS));
  assert.equal(issues.length, 1);
  assert.equal(issues[0]!.code, "unrecognized_keys");
  assert.match(issues[0]!.message, /amount/);
});

Deno.test("validateEvent() rejects occurred_at without a time zone", async (t) => {
  for (
    const at of [
      "2024-05-01T12:00:00",
      "2024-05-01 12:00:00Z",
      "2024-05-01",
      "yesterday",
      1714564800000,
    ]
  ) {
    await t.step(String(at), () => {
      const issues = rejected(validateEvent(event({ occurred_at: at }), ctx(), OPTS));
      assert.deepEqual(issues.map((i) => i.path), ["occurred_at"]);
    });
  }
});

Deno.test("validateEvent() enforces the occurred_at window around received_at", async (t) => {
  // ISO strings with microseconds: `base` ± 1 µs.
  const iso = (ms: number, micros = "000") => new Date(ms).toISOString().replace("Z", `${micros}Z`);
  const oldest = RECEIVED_MS - OPTS.maxPastMs;
  const latest = RECEIVED_MS + OPTS.maxFutureMs;
  const check = (occurred_at: string) => validateEvent(event({ occurred_at }), ctx(), OPTS);

  await t.step("exactly maxPastMs before is accepted", () => {
    assert.equal(accepted(check(iso(oldest))).occurred_at, iso(oldest));
  });
  await t.step("1 µs older is too_old", () => {
    const issues = rejected(check(iso(oldest - 1, "999")));
    assert.deepEqual(issues.map((i) => [i.path, i.code]), [["occurred_at", "too_old"]]);
  });
  await t.step("exactly maxFutureMs after is accepted", () => {
    assert.equal(accepted(check(iso(latest))).occurred_at, iso(latest));
  });
  await t.step("1 µs later is in_future", () => {
    const issues = rejected(check(iso(latest, "001")));
    assert.deepEqual(issues.map((i) => [i.path, i.code]), [["occurred_at", "in_future"]]);
  });
  await t.step("a payload error and a time error are reported together", () => {
    const issues = rejected(validateEvent(
      event({ type: "purchase", payload: {}, occurred_at: "2000-01-01T00:00:00Z" }),
      ctx(),
      OPTS,
    ));
    assert.deepEqual(issues.map((i) => i.path).sort(), ["occurred_at", "payload.amount"]);
  });
});

Deno.test("validateEvent() normalises occurred_at to UTC with microseconds", () => {
  const e = accepted(
    validateEvent(event({ occurred_at: "2024-05-01T14:00:00.123456+02:00" }), ctx(), OPTS),
  );
  assert.equal(e.occurred_at, "2024-05-01T12:00:00.123456Z");
  const short = accepted(
    validateEvent(event({ occurred_at: "2024-05-01T06:30:00.5-05:00" }), ctx(), OPTS),
  );
  assert.equal(short.occurred_at, "2024-05-01T11:30:00.500000Z");
});

Deno.test("isoToMicros() and microsToIso() round-trip", async (t) => {
  const cases: [string, number][] = [
    ["1970-01-01T00:00:00.000000Z", 0],
    ["1970-01-01T00:00:00.000001Z", 1],
    ["2024-05-01T12:00:00.123456Z", Date.UTC(2024, 4, 1, 12) * 1000 + 123_456],
    ["1969-12-31T23:59:59.999999Z", -1],
    ["1969-12-31T23:59:59.999500Z", -500],
    ["1950-06-15T08:30:00.000001Z", Date.UTC(1950, 5, 15, 8, 30) * 1000 + 1],
    ["1900-01-01T00:00:00.250750Z", Date.UTC(1900, 0, 1) * 1000 + 250_750],
  ];
  for (const [iso, micros] of cases) {
    await t.step(iso, () => {
      assert.equal(isoToMicros(iso), micros);
      assert.equal(microsToIso(micros), iso);
    });
  }
  await t.step("offsets and short fractions", () => {
    assert.equal(
      isoToMicros("2024-05-01T14:00:00.123456+02:00"),
      isoToMicros("2024-05-01T12:00:00.123456Z"),
    );
    assert.equal(isoToMicros("1969-12-31T20:00:00.7-04:00"), 700_000);
    assert.equal(microsToIso(isoToMicros("2024-05-01T12:00:00Z")), "2024-05-01T12:00:00.000000Z");
  });
  await t.step("digits beyond microseconds are dropped, not rounded", () => {
    assert.equal(isoToMicros("2024-05-01T12:00:00.1234569Z") % 1_000_000, 123_456);
  });
});

Deno.test("recordEventId() gives a stable name-based UUID per record position", async (t) => {
  const id = recordEventId("events", 0, 42);
  await t.step("deterministic", () => {
    assert.equal(recordEventId("events", 0, 42), id);
  });
  await t.step("differs by offset, partition and topic", () => {
    const ids = new Set([
      id,
      recordEventId("events", 0, 43),
      recordEventId("events", 1, 42),
      recordEventId("sales", 0, 42),
    ]);
    assert.equal(ids.size, 4);
  });
  await t.step("RFC 4122 layout: version 5, variant 10xx", () => {
    for (let offset = 0; offset < 200; offset++) {
      const u = recordEventId("events", 3, offset);
      assert.match(u, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
    assert.ok(IncomingEnvelope.shape.event_id.safeParse(id).success, "accepted as an event_id");
  });
  await t.step("is the first 16 bytes of SHA-1(topic/partition/offset)", async () => {
    const sha = new Uint8Array(
      await crypto.subtle.digest("SHA-1", new TextEncoder().encode("events/0/42")),
    );
    sha[6] = (sha[6]! & 0x0f) | 0x50;
    sha[8] = (sha[8]! & 0x3f) | 0x80;
    const hex = Array.from(sha.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
    assert.equal(id.replaceAll("-", ""), hex);
  });
});

Deno.test("allJsonSchemas() has one JSON Schema per type with payload and user_id", () => {
  const schemas = allJsonSchemas();
  assert.deepEqual(Object.keys(schemas), EVENT_TYPES);
  for (const type of EVENT_TYPES) {
    const schema = schemas[type] as {
      properties?: Record<string, { const?: unknown }>;
      required?: string[];
    };
    assert.ok(schema.properties?.payload, `${type}: properties.payload`);
    assert.ok(schema.required?.includes("user_id"), `${type}: required user_id`);
    assert.ok(schema.required?.includes("occurred_at"), `${type}: required occurred_at`);
    assert.equal(schema.properties?.type?.const, type, `${type}: type is a constant`);
  }
  const purchase = schemas.purchase as {
    properties: { payload: { required?: string[]; properties: Record<string, unknown> } };
  };
  assert.ok(purchase.properties.payload.required?.includes("amount"));
  assert.ok(!purchase.properties.payload.required?.includes("currency"), "currency has a default");
  assert.ok(purchase.properties.payload.properties.currency);
});

Deno.test("validateEvent() refuses strings with a lone surrogate, naming where", async (t) => {
  for (
    const [name, raw, path] of [
      ["user_id", event({ user_id: "u\ud800" }), "user_id"],
      ["a payload value", event({ payload: { ip: "1.2.3.4", note: "x\udfffy" } }), "payload.note"],
      ["a payload key", event({ payload: { ["k\ud800"]: 1 } }), "payload.?"],
      ["in an array", event({ payload: { tags: ["ok", "\ud83d"] } }), "payload.tags.1"],
    ] as const
  ) {
    await t.step(name, () => {
      const issues = rejected(validateEvent(raw, ctx(), OPTS));
      assert.equal(issues[0]!.path, path);
      assert.equal(issues[0]!.code, "invalid_string");
    });
  }
  await t.step("a surrogate pair (an emoji) is fine", () => {
    accepted(validateEvent(event({ user_id: "u-\u{1F600}" }), ctx(), OPTS));
  });
});
