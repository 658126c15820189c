/**
 * Helpers of the tests against the real schema registry (`scripts/registry.sh`, started by
 * `scripts/test.sh`): where it is, the registry client's options for our schemas, and a check
 * that fails with a hint when it is not running.
 *
 * @module
 */
import { SchemaType } from "@kafkajs/confluent-schema-registry";

/** The registry's Confluent API: `SCHEMA_REGISTRY_URL_TEST` (set by scripts/test.sh). */
export const REGISTRY_URL = Deno.env.get("SCHEMA_REGISTRY_URL_TEST") ??
  `http://127.0.0.1:${Deno.env.get("REGISTRY_PORT") ?? "18081"}/apis/ccompat/v7`;

/**
 * The client's JSON options for our schemas. Its Ajv 8 (draft-07 by default) throws at compile
 * time on every `format` it does not know (all of them without ajv-formats), and zod puts
 * `format: "uuid" | "date-time" | "ipv4" | …` next to an equivalent `pattern`. Ignoring the
 * formats keeps the patterns, so the same values are still refused.
 */
export const JSON_OPTIONS = { [SchemaType.JSON]: { validateFormats: false } };

/** Fails with a hint when no registry answers, instead of a bare ECONNREFUSED per test. */
export async function requireRegistry(): Promise<void> {
  try {
    const res = await fetch(`${REGISTRY_URL}/subjects`, { signal: AbortSignal.timeout(5000) });
    await res.body?.cancel();
    if (res.ok) return;
    throw new Error(`HTTP ${res.status}`);
  } catch (err) {
    throw new Error(
      `No schema registry at "${REGISTRY_URL}": start it with 'deno task registry:start'`,
      { cause: err },
    );
  }
}
