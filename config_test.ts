// Tests of reading the configuration from the environment.
//
// jsr: is not reachable on these machines, so assertions use node:assert.
import assert from "node:assert/strict";
import { ConfigError, consumedTopics, loadConfig, SETTINGS } from "./config.ts";

/** Asserts that loading `env` fails with a ConfigError whose message matches every pattern. */
function assertConfigError(env: Record<string, string>, ...patterns: (RegExp | string)[]): void {
  assert.throws(() => loadConfig(env), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    for (const p of patterns) {
      if (typeof p === "string") assert.ok(err.message.includes(p), `${err.message} ∌ ${p}`);
      else assert.match(err.message, p);
    }
    return true;
  });
}

Deno.test("loadConfig() uses the defaults with an empty environment", () => {
  const config = loadConfig({});
  assert.equal(config.mode, "embedded");
  assert.equal(config.PORT, 8080);
  assert.equal(config.HOSTNAME, "0.0.0.0");
  assert.equal(config.LAKE_DIR, "./data/lake");
  assert.equal(config.WAL_DIR, "./data/wal");
  assert.equal(config.KAFKA_BROKERS, undefined);
  assert.equal(config.KAFKA_TOPIC_EVENTS, "events");
  assert.equal(config.KAFKA_FROM_BEGINNING, true);
  assert.equal(config.MAX_BODY_BYTES, 5 * 1024 * 1024);
  assert.equal(config.MAX_JSON_DEPTH, 32);
  assert.equal(config.UNKNOWN_TYPES, "reject");
  assert.equal(config.LOG_LEVEL, "info");
});

Deno.test("loadConfig() fills every setting that has a default and leaves the others undefined", () => {
  const config = loadConfig({}) as Record<string, unknown>;
  for (const [name, spec] of Object.entries(SETTINGS)) {
    const dflt = (spec as { default?: string }).default;
    if (dflt === undefined) assert.equal(config[name], undefined, name);
    else assert.notEqual(config[name], undefined, name);
  }
});

Deno.test("loadConfig() treats an empty variable as unset", () => {
  const config = loadConfig({ PORT: "", KAFKA_BROKERS: "", LAKE_DIR: "" });
  assert.equal(config.PORT, 8080);
  assert.equal(config.mode, "embedded");
  assert.equal(config.LAKE_DIR, "./data/lake");
});

Deno.test("loadConfig() parses set values", async (t) => {
  await t.step("numbers, with surrounding spaces", () => {
    const config = loadConfig({ PORT: " 9000 ", MAX_EVENTS_PER_REQUEST: "5" });
    assert.equal(config.PORT, 9000);
    assert.equal(config.MAX_EVENTS_PER_REQUEST, 5);
  });
  await t.step("range limits are inclusive", () => {
    assert.equal(loadConfig({ PORT: "0" }).PORT, 0);
    assert.equal(loadConfig({ PORT: "65535" }).PORT, 65535);
  });
  await t.step("booleans", () => {
    for (const [raw, value] of [["true", true], ["FALSE", false], ["1", true], ["0", false]]) {
      assert.equal(loadConfig({ KAFKA_FROM_BEGINNING: raw as string }).KAFKA_FROM_BEGINNING, value);
    }
  });
  await t.step("enums", () => {
    assert.equal(loadConfig({ UNKNOWN_TYPES: "other" }).UNKNOWN_TYPES, "other");
    assert.equal(loadConfig({ LOG_LEVEL: "debug" }).LOG_LEVEL, "debug");
  });
});

Deno.test("loadConfig() switches to kafka mode when KAFKA_BROKERS is set", () => {
  const config = loadConfig({ KAFKA_BROKERS: "kafka-1:9092, kafka-2:9093,," });
  assert.equal(config.mode, "kafka");
  assert.deepEqual(config.KAFKA_BROKERS, ["kafka-1:9092", "kafka-2:9093"]);
});

Deno.test("loadConfig() names the variable and quotes the bad value", async (t) => {
  await t.step('PORT "abc"', () => assertConfigError({ PORT: "abc" }, /PORT .*integer/, '"abc"'));
  await t.step('PORT "70000"', () => {
    assertConfigError({ PORT: "70000" }, /PORT must be at most 65535/, '"70000"');
  });
  await t.step('PORT "-1"', () => assertConfigError({ PORT: "-1" }, /PORT .*at least 0/, '"-1"'));
  await t.step('PORT "80.5"', () => assertConfigError({ PORT: "80.5" }, "PORT", '"80.5"'));
  await t.step("a topic name with a space", () => {
    assertConfigError({ KAFKA_TOPIC_EVENTS: "my events" }, "KAFKA_TOPIC_EVENTS", '"my events"');
  });
  await t.step("a topic name with a path separator", () => {
    assertConfigError({ KAFKA_TOPIC_DEAD_LETTER: "../dlq" }, "KAFKA_TOPIC_DEAD_LETTER", '"../dlq"');
  });
  await t.step("a bad topic in KAFKA_CONSUME_TOPICS", () => {
    assertConfigError(
      { KAFKA_CONSUME_TOPICS: "events,sa les" },
      "KAFKA_CONSUME_TOPICS",
      '"events,sa les"',
    );
  });
  await t.step("KAFKA_BROKERS without a port", () => {
    assertConfigError({ KAFKA_BROKERS: "localhost" }, /KAFKA_BROKERS .*host:port/, '"localhost"');
  });
  await t.step("KAFKA_BROKERS with a URL", () => {
    assertConfigError(
      { KAFKA_BROKERS: "kafka://broker:9092" },
      "KAFKA_BROKERS",
      '"kafka://broker:9092"',
    );
  });
  await t.step("KAFKA_BROKERS of separators only", () => {
    assertConfigError({ KAFKA_BROKERS: " , " }, /KAFKA_BROKERS .*at least one broker/);
  });
  await t.step("an unknown enum value", () => {
    assertConfigError({ UNKNOWN_TYPES: "drop" }, "UNKNOWN_TYPES", '"drop"');
  });
  await t.step("a boolean that is not one", () => {
    assertConfigError({ KAFKA_FROM_BEGINNING: "yes" }, "KAFKA_FROM_BEGINNING", '"yes"');
  });
});

Deno.test("loadConfig() checks roles, schedules and the admin token", async (t) => {
  await t.step("a worker without Kafka", () => {
    assertConfigError({ ROLE: "worker" }, /ROLE worker needs KAFKA_BROKERS/);
  });
  await t.step("a gateway without Kafka", () => {
    assertConfigError({ ROLE: "gateway" }, /ROLE gateway needs KAFKA_BROKERS/);
  });
  await t.step("a gateway with Kafka", () => {
    assert.equal(loadConfig({ ROLE: "gateway", KAFKA_BROKERS: "k:9092" }).ROLE, "gateway");
  });
  await t.step("an unknown role", () => assertConfigError({ ROLE: "edge" }, "ROLE", '"edge"'));
  await t.step("a cron expression with 4 fields", () => {
    assertConfigError({ JOBS_CRON: "* * * *" }, /JOBS_CRON must be a 5-field cron/, '"* * * *"');
  });
  await t.step("a cron expression with shell text", () => {
    assertConfigError({ JOBS_CRON: "* * * * *; rm" }, "JOBS_CRON");
  });
  await t.step("cron off and a schedule", () => {
    assert.equal(loadConfig({ JOBS_CRON: "off" }).JOBS_CRON, "off");
    assert.equal(loadConfig({ JOBS_CRON: "0 */2 * * 1-5" }).JOBS_CRON, "0 */2 * * 1-5");
  });
  await t.step("a short admin token", () => {
    assertConfigError({ ADMIN_TOKEN: "secret" }, /ADMIN_TOKEN must be at least 16/);
  });
});

Deno.test("loadConfig() reports every bad variable in one message", () => {
  assertConfigError(
    { PORT: "abc", KAFKA_TOPIC_EVENTS: "a b", KAFKA_BROKERS: "nope", MAX_JSON_DEPTH: "1" },
    /PORT .*"abc"/,
    /KAFKA_TOPIC_EVENTS .*"a b"/,
    /KAFKA_BROKERS .*"nope"/,
    /MAX_JSON_DEPTH .*"1"/,
  );
});

Deno.test("loadConfig() reads the schema registry settings", async (t) => {
  const kafka = { KAFKA_BROKERS: "127.0.0.1:9092" };
  await t.step("off by default, BACKWARD, 5 s timeout, 60 s retry", () => {
    const config = loadConfig(kafka);
    assert.equal(config.SCHEMA_REGISTRY_URL, undefined);
    assert.equal(config.SCHEMA_REGISTRY_COMPATIBILITY, "BACKWARD");
    assert.equal(config.SCHEMA_REGISTRY_TIMEOUT_MS, 5000);
    assert.equal(config.SCHEMA_REGISTRY_RETRY_MS, 60_000);
  });
  await t.step("basic auth: user, and a password that may hold colons", () => {
    const config = loadConfig({
      ...kafka,
      SCHEMA_REGISTRY_URL: "http://registry:8081",
      SCHEMA_REGISTRY_AUTH: "svc:pa:ss",
    });
    assert.deepEqual(config.SCHEMA_REGISTRY_AUTH, { username: "svc", password: "pa:ss" });
  });
  await t.step("bad auth is refused without echoing it", () => {
    assertConfigError(
      { ...kafka, SCHEMA_REGISTRY_URL: "http://registry:8081", SCHEMA_REGISTRY_AUTH: "secret" },
      /SCHEMA_REGISTRY_AUTH must be user:password/,
    );
    assert.throws(
      () => loadConfig({ ...kafka, SCHEMA_REGISTRY_AUTH: "secret", SCHEMA_REGISTRY_URL: "x" }),
      (err: Error) => !err.message.includes("secret"),
    );
  });
  await t.step("the URL needs Kafka, the auth needs the URL, the level is Confluent's", () => {
    assertConfigError({ SCHEMA_REGISTRY_URL: "http://registry:8081" }, /needs KAFKA_BROKERS/);
    assertConfigError({ ...kafka, SCHEMA_REGISTRY_AUTH: "u:p" }, /SCHEMA_REGISTRY_URL is not/);
    assertConfigError(
      { ...kafka, SCHEMA_REGISTRY_COMPATIBILITY: "LOOSE" },
      /SCHEMA_REGISTRY_COMPATIBILITY/,
    );
    assertConfigError({ ...kafka, SCHEMA_REGISTRY_URL: "registry:8081" }, /SCHEMA_REGISTRY_URL/);
  });
});

Deno.test("loadConfig() ignores variables it does not know", () => {
  assert.equal(loadConfig({ PATH: "/usr/bin", HOME: "/root" }).PORT, 8080);
});

Deno.test("consumedTopics() is KAFKA_CONSUME_TOPICS or else the events topic", async (t) => {
  await t.step("unset: the events topic", () => {
    assert.deepEqual(consumedTopics(loadConfig({})), ["events"]);
    assert.deepEqual(consumedTopics(loadConfig({ KAFKA_TOPIC_EVENTS: "ingest" })), ["ingest"]);
  });
  await t.step("a list, trimmed, empty entries dropped", () => {
    const config = loadConfig({ KAFKA_CONSUME_TOPICS: " events, sales,,tv.plays " });
    assert.deepEqual(consumedTopics(config), ["events", "sales", "tv.plays"]);
  });
  await t.step("separators only: the events topic", () => {
    assert.deepEqual(consumedTopics(loadConfig({ KAFKA_CONSUME_TOPICS: " , " })), ["events"]);
  });
});

Deno.test("every setting is documented in the configuration table (docs/configuration.md)", async () => {
  const table = await Deno.readTextFile(new URL("./docs/configuration.md", import.meta.url));
  const missing = Object.keys(SETTINGS).filter((name) => !table.includes(`\`${name}\``));
  assert.deepEqual(missing, []);
});
