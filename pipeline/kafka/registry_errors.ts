/**
 * How the Schema Registry client tells a refusal (the process must not start) from a failure it
 * retries, and the messages a refusal stops the start with.
 *
 * @module
 */

/**
 * The registry refused a schema or the configuration (incompatible change, invalid schema, wrong
 * credentials, no registry API at the URL, another compatibility level): the process must not
 * start, since it would write records no registered schema describes.
 */
export class SchemaRegistryRefusedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SchemaRegistryRefusedError";
  }
}

/** What the client's errors carry: mappersmith's ResponseError has the HTTP status. */
export interface ClientError {
  name?: string;
  status?: number;
  message?: string;
}

/** The message of a client error, without mappersmith's client-id prefix. */
export function messageOf(err: unknown): string {
  return String((err as Error)?.message ?? err).replace(/^streamgate - /, "");
}

/**
 * The error a registration failure stops the start with, or undefined when it may pass (no
 * answer, a timeout, a 5xx: retried).
 */
export function refusal(
  err: ClientError,
  subject: string,
  opts: { url: string; compatibility: string },
): SchemaRegistryRefusedError | undefined {
  const why = messageOf(err);
  const cause = { cause: err };
  if (err.name === "ConfluentSchemaRegistryCompatibilityError") {
    const level = /!= (\w+)\)/.exec(why)?.[1] ?? "another level";
    return new SchemaRegistryRefusedError(
      `Cannot start: subject "${subject}" has compatibility ${level} in the schema registry and ` +
        `SCHEMA_REGISTRY_COMPATIBILITY is ${opts.compatibility}. Set one to the other (the ` +
        `subject's level: PUT ${opts.url}/config/${subject} {"compatibility": "${opts.compatibility}"})`,
      cause,
    );
  }
  if (err.name === "ConfluentSchemaRegistryArgumentError") {
    return new SchemaRegistryRefusedError(
      `Cannot start: the value schema of subject "${subject}" does not compile: ${why}`,
      cause,
    );
  }
  switch (err.status) {
    case 409:
      return new SchemaRegistryRefusedError(
        `Cannot start: the schema registry refused the value schema of subject "${subject}" as ` +
          `incompatible with the registered versions (compatibility ${opts.compatibility}): ` +
          `${why}. Change event schemas only by adding optional fields (docs/schema-registry.md)`,
        cause,
      );
    case 422:
      return new SchemaRegistryRefusedError(
        `Cannot start: the schema registry refused the value schema of subject "${subject}" as ` +
          `invalid: ${why}`,
        cause,
      );
    case 401:
    case 403:
      return new SchemaRegistryRefusedError(
        `Cannot start: the schema registry at "${opts.url}" refused the credentials (HTTP ` +
          `${err.status}): check SCHEMA_REGISTRY_AUTH`,
        cause,
      );
    case 404:
      return new SchemaRegistryRefusedError(
        `Cannot start: no schema registry API at "${opts.url}" (HTTP 404: ${why}). ` +
          "SCHEMA_REGISTRY_URL is the base of the Confluent API (Apicurio: …/apis/ccompat/v7)",
        cause,
      );
  }
  return undefined;
}
