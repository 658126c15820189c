/**
 * Schema Registry support: the only module that imports `@kafkajs/confluent-schema-registry`. It
 * speaks Confluent's REST API (any compatible registry: Confluent, Apicurio's `ccompat`, Redpanda,
 * Karapace) and Confluent's wire format, where a record value is magic byte 0, the schema id
 * (4 bytes, big-endian), then the payload.
 *
 * - **Out**: {@link SchemaRegistryClient.register} registers the value schema of every topic the
 *   process produces to under `<topic>-value` (Confluent's TopicNameStrategy) and caches the ids;
 *   {@link SchemaRegistryClient.framer} gives each producer its topic's {@link RecordFramer}, which
 *   frames a value without a registry call.
 * - **In**: {@link SchemaRegistryClient.decoder} turns framed records (JSON Schema or Avro) back
 *   into JSON values for the lake loader, fetching each writer's schema once by id.
 *
 * docs/schema-registry.md describes the behaviour; scripts/registry/README.md how this client and
 * Apicurio differ from Confluent's registry.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { COMPATIBILITY, SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
// The client's own wire encoder (its package root does not export it). Its decoder is not used:
// a CommonJS default export that Deno and TypeScript see differently; reading the header back is
// `idOf` below, and tests/schema_registry_test.ts checks both ways against the client.
import {
  encode as frameWithId,
  MAGIC_BYTE,
} from "@kafkajs/confluent-schema-registry/dist/wireEncoder.js";
import type { DecodedValue, LogRecord, RecordDecoder } from "../durable_log.ts";
import type { Issue } from "../validate.ts";
import { sleep } from "../fraud/llm/retry.ts";
import type { Logger } from "../../shared/logger.ts";
import type { ProbeResult } from "../../shared/health.ts";
import {
  type ClientError,
  messageOf,
  refusal,
  SchemaRegistryRefusedError,
} from "./registry_errors.ts";

export { SchemaRegistryRefusedError } from "./registry_errors.ts";

/** Bytes before the payload of a framed value: the magic byte and the schema id. */
const HEADER_BYTES = 5;
const MAGIC = MAGIC_BYTE[0]!;

/** A compatibility level, as Confluent names them. */
export type Compatibility = `${COMPATIBILITY}`;

/** Options of {@link SchemaRegistryClient}. */
export interface SchemaRegistryOptions {
  /** Base URL of the registry's Confluent API (Apicurio: `…/apis/ccompat/v7`). */
  url: string;
  /** Basic auth. */
  auth?: { username: string; password: string } | undefined;
  /** Level set on subjects created here and expected of existing ones. */
  compatibility: Compatibility;
  /** Timeout of one request. */
  timeoutMs: number;
  /** How long a lookup for a consumed record is retried before the record is dead-lettered. */
  retryMs: number;
  logger: Logger;
  /** First and longest wait between retries. @default { first: 250, most: 5000 } */
  backoffMs?: { first: number; most: number };
}

/** The value schema of a topic this process produces to: a JSON Schema (draft-07). */
export interface TopicSchema {
  topic: string;
  schema: Record<string, unknown>;
}

/** Frames one topic's record values with the id its value schema was registered under. */
export interface RecordFramer {
  /**
   * The value in the wire format: magic byte 0, the schema id, the value (copied once).
   *
   * @throws {Error} while the topic's schema is not registered (see {@link unavailable}).
   */
  frame(value: Uint8Array | Buffer): Buffer;
  /** Why values cannot be framed yet (the schema is not registered), or undefined. */
  unavailable(): string | undefined;
}

/** Confluent's TopicNameStrategy: the subject of a topic's record values. */
export function valueSubject(topic: string): string {
  return `${topic}-value`;
}

interface Subject {
  topic: string;
  name: string;
  schema: string;
  id?: number;
  /** Why the last registration attempt failed. */
  error?: string;
}

/** A writer's schema, as the client compiled it, or why records with its id cannot be read. */
type Writer =
  | {
    type: SchemaType.JSON | SchemaType.AVRO;
    schema: Awaited<ReturnType<SchemaRegistry["getSchema"]>>;
  }
  | { issues: Issue[] };

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The registry client, the registered ids and the cache of writers' schemas. */
export class SchemaRegistryClient {
  readonly #client: SchemaRegistry;
  readonly #opts: SchemaRegistryOptions;
  /** The API's base URL, without a trailing slash. */
  readonly #base: string;
  readonly #log: Logger;
  readonly #backoff: { first: number; most: number };
  readonly #subjects = new Map<string, Subject>();
  readonly #writers = new Map<number, Writer>();
  readonly #stop = new AbortController();
  /** Whether `GET /subjects` answered once, or why it did not. */
  #api: { answers: boolean; error?: string } = { answers: false };

  constructor(options: SchemaRegistryOptions) {
    this.#opts = options;
    this.#base = options.url.replace(/\/+$/, "");
    this.#log = options.logger.child({ component: "schema-registry" });
    this.#backoff = options.backoffMs ?? { first: 250, most: 5000 };
    const timeout = options.timeoutMs;
    this.#client = new SchemaRegistry({
      host: this.#base,
      clientId: "streamgate",
      ...(options.auth ? { auth: options.auth } : {}),
      // Retries are ours (registration in the background, lookups with the partition waiting), so
      // the client gives up at once; every request has a timeout (mappersmith has none).
      retry: { retries: 0 },
      middlewares: [() => ({
        prepareRequest: (next) => next().then((request) => request.enhance({ timeout })),
      })],
    }, {
      // Ajv 8 throws on every `format` it does not know (uuid, date-time, ipv4, …: it knows
      // none without ajv-formats); zod writes an equivalent `pattern` beside each, which still
      // holds. Not strict: other producers' schemas may carry keywords of their own (Confluent's
      // converters add `connect.*`).
      [SchemaType.JSON]: { validateFormats: false, strict: false },
    });
  }

  /**
   * Registers each topic's value schema under `<topic>-value` and caches the ids. Resolves once
   * all are registered, or once a first attempt failed for a reason that may pass (the registry
   * does not answer): then it keeps trying in the background, and the framers report the topic
   * as unavailable until it succeeds.
   *
   * @param onRefused called when a background attempt is refused (the first attempt throws).
   * @throws {SchemaRegistryRefusedError} when the registry refuses a schema or the configuration.
   */
  async register(
    topics: TopicSchema[],
    onRefused: (err: SchemaRegistryRefusedError) => void,
  ): Promise<void> {
    for (const { topic, schema } of topics) {
      this.#subjects.set(topic, {
        topic,
        name: valueSubject(topic),
        schema: JSON.stringify(schema),
      });
    }
    if (await this.#registerPending()) return;
    this.#log.warn("The schema registry does not answer; registering in the background", {
      url: this.#opts.url,
      ...(this.#api.error ? { err: this.#api.error } : {}),
      subjects: this.#pending().map((s) => ({ subject: s.name, error: s.error })),
    });
    void this.#retryRegistration(onRefused);
  }

  #pending(): Subject[] {
    return [...this.#subjects.values()].filter((s) => s.id === undefined);
  }

  /** One attempt for every unregistered subject; true when none is left. */
  async #registerPending(): Promise<boolean> {
    if (!this.#api.answers && !(await this.#checkApi())) return false;
    for (const s of this.#pending()) {
      try {
        const { id } = await this.#client.register(
          { type: SchemaType.JSON, schema: s.schema },
          { subject: s.name, compatibility: this.#opts.compatibility as COMPATIBILITY },
        );
        s.id = id;
        delete s.error;
        this.#log.info("Value schema registered", { topic: s.topic, subject: s.name, id });
      } catch (err) {
        const refused = refusal(err as ClientError, s.name, this.#opts);
        if (refused) throw refused;
        s.error = messageOf(err);
      }
    }
    return this.#pending().length === 0;
  }

  /**
   * Whether the registry's API answers `GET /subjects`. Checked before anything else, so that a
   * wrong URL or wrong credentials stop the start even in a process that registers nothing (a
   * worker without scoring): its lookups would otherwise take every 404 for an unknown schema id.
   * The client has no call for this, hence a plain request.
   */
  async #checkApi(): Promise<boolean> {
    const { auth, timeoutMs } = this.#opts;
    let res: Response;
    try {
      res = await fetch(`${this.#base}/subjects`, {
        headers: {
          accept: "application/vnd.schemaregistry.v1+json, application/json",
          ...(auth ? { authorization: `Basic ${btoa(`${auth.username}:${auth.password}`)}` } : {}),
        },
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel();
    } catch (err) {
      // fetch says "fetch failed"; the why (connection refused, DNS, …) is its cause.
      const cause = (err as Error).cause;
      const why = cause instanceof Error ? `${messageOf(err)}: ${cause.message}` : messageOf(err);
      this.#api = { answers: false, error: why };
      return false;
    }
    if (res.ok) {
      this.#api = { answers: true };
      return true;
    }
    const refused = refusal(
      { status: res.status, message: `GET /subjects: HTTP ${res.status}` },
      "",
      this.#opts,
    );
    if (refused) throw refused;
    this.#api = { answers: false, error: `GET /subjects: HTTP ${res.status}` };
    return false;
  }

  async #retryRegistration(onRefused: (err: SchemaRegistryRefusedError) => void): Promise<void> {
    let wait = this.#backoff.first;
    while (!this.#stop.signal.aborted) {
      await sleep(wait, this.#stop.signal);
      wait = Math.min(wait * 2, this.#backoff.most);
      if (this.#stop.signal.aborted) return;
      try {
        if (await this.#registerPending()) return;
      } catch (err) {
        onRefused(err as SchemaRegistryRefusedError);
        return;
      }
    }
  }

  /** The framer of a topic passed to {@link register}. */
  framer(topic: string): RecordFramer {
    const s = this.#subjects.get(topic);
    if (!s) throw new Error(`No value schema for topic "${topic}": register it first`);
    const unavailable = () =>
      s.id === undefined
        ? `The schema registry has not registered subject "${s.name}" yet`
        : undefined;
    return {
      unavailable,
      frame: (value) => {
        if (s.id === undefined) throw new Error(unavailable());
        // A view, not a copy: the encoder's concat is the one copy (as Buffer.from is unframed).
        return frameWithId(s.id, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      },
    };
  }

  /**
   * Readiness: the API answered and every schema is registered (a registry down after that does
   * not stop producing).
   */
  probe(): ProbeResult {
    if (!this.#api.answers) {
      return { state: "down", detail: `the schema registry does not answer: ${this.#api.error}` };
    }
    const pending = this.#pending();
    if (pending.length === 0) {
      const ids = [...this.#subjects.values()].map((s) => `${s.name} id ${s.id}`).join(", ");
      return { state: "ok", ...(ids ? { detail: ids } : {}) };
    }
    return {
      state: "down",
      detail: pending.map((s) => `${s.name} not registered yet: ${s.error ?? "registering"}`)
        .join("; "),
    };
  }

  /** Decodes framed records for the lake loader (see {@link RecordDecoder}). */
  readonly decoder: RecordDecoder = {
    decode: (records, heartbeat) => this.#decode(records, heartbeat),
  };

  async #decode(
    records: LogRecord[],
    heartbeat?: () => Promise<void>,
  ): Promise<(DecodedValue | undefined)[] | undefined> {
    let framed = false;
    let missing: Set<number> | undefined;
    for (const r of records) {
      if (r.value[0] !== MAGIC) continue; // JSON text never starts with a NUL byte
      framed = true;
      if (r.value.byteLength < HEADER_BYTES) continue;
      const id = idOf(r.value);
      if (!this.#writers.has(id)) (missing ??= new Set()).add(id);
    }
    if (!framed) return undefined;
    // Why this chunk's records with a given id cannot be read (not cached: it may pass).
    const failures = new Map<number, Issue[]>();
    if (missing) {
      const deadline = Date.now() + this.#opts.retryMs;
      await Promise.all([...missing].map((id) => this.#lookup(id, deadline, failures, heartbeat)));
    }
    return records.map((r) =>
      r.value[0] === MAGIC ? this.#decodeOne(r.value, failures) : undefined
    );
  }

  /**
   * Fetches and compiles a writer's schema into the cache. A registry that does not answer is
   * retried until `deadline` (the caller's partition waits meanwhile, heartbeating), then the id
   * goes into `failures`; so does an id the registry does not know.
   */
  async #lookup(
    id: number,
    deadline: number,
    failures: Map<number, Issue[]>,
    heartbeat?: () => Promise<void>,
  ): Promise<void> {
    let wait = this.#backoff.first;
    for (let attempt = 1;; attempt++) {
      try {
        await this.#client.getSchema(id); // fetches, compiles and caches it with its type
        const { type, schema } = this.#client.cache.getSchema(id)!;
        this.#writers.set(
          id,
          type === SchemaType.JSON || type === SchemaType.AVRO ? { type, schema } : {
            issues: [issue(
              "schema_unsupported",
              `Schema id ${id} is ${type}: only JSON Schema and Avro are read`,
            )],
          },
        );
        if (attempt > 1) this.#log.info("The schema registry answers again", { schema_id: id });
        return;
      } catch (err) {
        const e = err as ClientError;
        if (e.status === 404) {
          failures.set(id, [
            issue(
              "schema_unknown",
              `The schema registry has no schema id ${id}: ${messageOf(err)}`,
            ),
          ]);
          return;
        }
        if (e.name === "ConfluentSchemaRegistryArgumentError") {
          // The schema arrived but does not compile (e.g. a JSON Schema draft Ajv does not read).
          this.#writers.set(id, {
            issues: [
              issue("schema_unsupported", `Schema id ${id} cannot be read: ${messageOf(err)}`),
            ],
          });
          return;
        }
        if (this.#stop.signal.aborted) {
          throw new Error(
            `Stopped waiting for schema id ${id}: the schema registry client is closed`,
          );
        }
        const left = deadline - Date.now();
        if (left <= 0) {
          this.#log.error("The schema registry did not answer in time: records go to the DLQ", {
            schema_id: id,
            retry_ms: this.#opts.retryMs,
            err: messageOf(err),
          });
          failures.set(id, [
            issue(
              "schema_registry_unavailable",
              `The schema registry did not give schema id ${id} within ${this.#opts.retryMs} ms: ${
                messageOf(err)
              }`,
            ),
          ]);
          return;
        }
        if (attempt === 1) {
          this.#log.warn("Schema registry lookup failed; the partition waits and retries", {
            schema_id: id,
            retry_ms: this.#opts.retryMs,
            err: messageOf(err),
          });
        }
        await heartbeat?.();
        await sleep(Math.min(wait, left), this.#stop.signal);
        wait = Math.min(wait * 2, this.#backoff.most);
      }
    }
  }

  #decodeOne(value: Uint8Array, failures: Map<number, Issue[]>): DecodedValue {
    if (value.byteLength < HEADER_BYTES) {
      return rejected(issue(
        "invalid_framing",
        `Record value starts with the schema registry's magic byte 0 but has ${value.byteLength} ` +
          `bytes; the header alone is ${HEADER_BYTES}`,
      ));
    }
    const id = idOf(value);
    const failed = failures.get(id);
    if (failed) return { ok: false, issues: failed };
    const writer = this.#writers.get(id)!;
    if ("issues" in writer) return { ok: false, issues: writer.issues };
    const payload = value.subarray(HEADER_BYTES);
    if (writer.type === SchemaType.AVRO) {
      try {
        const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
        return { ok: true, value: avroToJson(writer.schema.fromBuffer(bytes)) };
      } catch (err) {
        return rejected(issue(
          "schema_mismatch",
          `Record does not decode with its Avro schema (id ${id}): ${messageOf(err)}`,
        ));
      }
    }
    let doc: unknown;
    try {
      doc = JSON.parse(utf8.decode(payload));
    } catch (err) {
      const what = err instanceof SyntaxError ? "not valid JSON" : "not valid UTF-8";
      return rejected(issue("invalid_json", `Record value after the schema id ${id} is ${what}`));
    }
    const issues: Issue[] = [];
    const valid = writer.schema.isValid(doc as object, {
      errorHook: (path, message) =>
        issues.push({
          path: pointerToPath(path[0] ?? ""),
          code: "schema_mismatch",
          message: `Does not match its JSON Schema (id ${id}): ${message}`,
        }),
    });
    return valid ? { ok: true, value: doc } : { ok: false, issues };
  }

  /** Stops background registration and makes waiting lookups give up. Safe to call twice. */
  close(): void {
    this.#stop.abort();
  }
}

/** The schema id of a framed value: bytes 1–4, a big-endian int32. */
function idOf(value: Uint8Array): number {
  return (value[1]! << 24) | (value[2]! << 16) | (value[3]! << 8) | value[4]!;
}

function issue(code: string, message: string): Issue {
  return { path: "", code, message };
}

function rejected(i: Issue): DecodedValue {
  return { ok: false, issues: [i] };
}

/** Ajv's instance path (`/payload/amount`) as the loader's issues write it (`payload.amount`). */
function pointerToPath(pointer: string): string {
  return pointer.split("/").slice(1).map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"))
    .join(".");
}

/**
 * An Avro value as JSON: records (avsc builds class instances) become plain objects, `bytes` and
 * `fixed` base64 strings, and a `null` field is left out, since Avro has no absent field and an
 * optional one is a union with null (`event_id: null` would not pass as "no event_id").
 */
function avroToJson(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Uint8Array) {
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64");
  }
  if (Array.isArray(value)) return value.map(avroToJson);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v !== null && v !== undefined) out[k] = avroToJson(v);
  }
  return out;
}
