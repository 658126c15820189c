/**
 * The configured API keys: {@link ApiKey} and {@link parseApiKeys}, which reads the `API_KEYS`
 * setting. No `hono` here: `config.ts` imports this file to validate settings, and settings must
 * not pull in the HTTP layer. The middleware that checks keys is `api_key_auth.ts`.
 *
 * @module
 */

/** One configured API key. */
export interface ApiKey {
  /** What logs, metrics and rate limits call the key. */
  name: string;
  /** What clients send. */
  secret: string;
}

/** The name rule of an API key: safe in logs, metric labels and Redis keys. */
const KEY_NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** Shortest secret accepted. */
export const MIN_SECRET_LENGTH = 16;
/** A secret: visible ASCII without the separators of the API_KEYS list. */
const SECRET = /^[\x21-\x2b\x2d-\x7e]+$/;

/**
 * Parses `name:secret,name:secret` (the `API_KEYS` setting). Error messages name the entry and
 * the key's name, never a secret.
 */
export function parseApiKeys(text: string): ApiKey[] {
  const keys: ApiKey[] = [];
  const entries = text.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "");
  if (entries.length === 0) throw new Error("must list at least one name:secret pair");
  entries.forEach((entry, i) => {
    const at = entry.indexOf(":");
    const name = at < 0 ? "" : entry.slice(0, at).trim();
    const secret = at < 0 ? "" : entry.slice(at + 1).trim();
    const which = `entry ${i + 1}`;
    if (at < 0) throw new Error(`${which} is not name:secret`);
    if (!KEY_NAME.test(name)) {
      throw new Error(`${which} has a name that is not 1-64 characters of A-Z a-z 0-9 . _ -`);
    }
    if (secret.length < MIN_SECRET_LENGTH) {
      throw new Error(`key "${name}" has a secret shorter than ${MIN_SECRET_LENGTH} characters`);
    }
    if (!SECRET.test(secret)) {
      throw new Error(`key "${name}" has a secret with spaces, commas or non-ASCII characters`);
    }
    const same = keys.find((key) => key.name === name || key.secret === secret);
    if (same !== undefined) {
      throw new Error(
        same.name === name
          ? `key "${name}" is listed twice`
          : `keys "${same.name}" and "${name}" have the same secret`,
      );
    }
    keys.push({ name, secret });
  });
  return keys;
}
