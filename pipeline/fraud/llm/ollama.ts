/**
 * The Ollama client of the LLM judge: one chat request for a verdict, with its own deadline, and
 * the `/api/version` probe. This is the only module that imports `ollama`.
 *
 * Every request has its own deadline (an `AbortController` merged into the `fetch` the ollama
 * client uses, plus a race against the same signal, so the deadline holds even if a custom fetch
 * ignores its signal). A failure says whether another attempt may help: timeouts, HTTP 5xx,
 * network errors and invalid replies may; HTTP 4xx (e.g. a missing model) does not.
 *
 * @module
 */
import { Ollama } from "ollama";
import type { ChatMessage } from "./prompt.ts";
import type { Failure } from "./retry.ts";
import { messageOf } from "./text.ts";
import { parseVerdict, type Verdict, VERDICT_JSON_SCHEMA } from "./verdict.ts";

/** Options of {@linkcode OllamaClient}. */
export interface OllamaClientOptions {
  /** Ollama base URL, e.g. `http://127.0.0.1:11434`. */
  host: string;
  /** Model name, e.g. `llama3.2:1b`. */
  model: string;
  /** Deadline of one request, in ms. */
  timeoutMs: number;
  /** `fetch` handed to the ollama client (tests may wrap it). */
  fetch: typeof fetch;
  /** Aborts every request at once (shutdown); a request it ends fails as "shutting down". */
  signal: AbortSignal;
}

/** Asks one Ollama model for verdicts; each call is one bounded HTTP request. */
export class OllamaClient {
  readonly #host: string;
  readonly #model: string;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #closing: AbortSignal;

  /** Creates a client; no connection is made until the first call. */
  constructor(options: OllamaClientOptions) {
    this.#host = options.host;
    this.#model = options.model;
    this.#timeoutMs = options.timeoutMs;
    this.#fetch = options.fetch;
    this.#closing = options.signal;
  }

  /** One chat request with its own deadline. Never rejects. */
  async chat(messages: ChatMessage[]): Promise<{ verdict: Verdict } | Failure> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`timeout after ${this.#timeoutMs} ms`));
    }, this.#timeoutMs);
    const signal = AbortSignal.any([controller.signal, this.#closing]);
    const client = new Ollama({ host: this.#host, fetch: fetchWithSignal(this.#fetch, signal) });
    try {
      const chat = client.chat({
        model: this.#model,
        messages,
        format: VERDICT_JSON_SCHEMA,
        stream: false,
        options: { temperature: 0 },
      });
      chat.catch(() => {});
      // The race makes the deadline hold even if a custom fetch ignores its signal.
      const reply: unknown = await Promise.race([chat, rejectOnAbort(signal)]);
      const content = typeof reply === "object" && reply !== null && "message" in reply &&
          typeof reply.message === "object" && reply.message !== null &&
          "content" in reply.message
        ? reply.message.content
        : undefined;
      const parsed = parseVerdict(content);
      return parsed.ok ? { verdict: parsed.verdict } : { reason: parsed.reason, retryable: true };
    } catch (error) {
      if (this.#closing.aborted) return { reason: "shutting down", retryable: false };
      if (timedOut) return { reason: `timeout after ${this.#timeoutMs} ms`, retryable: true };
      return this.#classify(error);
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
  }

  /** `GET /api/version`, bounded by `timeoutMs`; rejects when Ollama is unreachable. */
  async ping(): Promise<void> {
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error(`timeout after ${this.#timeoutMs} ms`)),
      this.#timeoutMs,
    );
    const signal = AbortSignal.any([controller.signal, this.#closing]);
    const client = new Ollama({ host: this.#host, fetch: fetchWithSignal(this.#fetch, signal) });
    try {
      const version = client.version();
      version.catch(() => {});
      const reply: unknown = await Promise.race([version, rejectOnAbort(signal)]);
      if (
        typeof reply !== "object" || reply === null || !("version" in reply) ||
        typeof reply.version !== "string"
      ) {
        throw new Error("unexpected /api/version reply");
      }
    } catch (error) {
      throw new Error(`Ollama at ${this.#host} is not reachable: ${messageOf(error)}`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
  }

  #classify(error: unknown): Failure {
    const status = responseStatus(error);
    const message = messageOf(error);
    if (status === undefined) {
      if (error instanceof SyntaxError) {
        return { reason: `invalid reply: response is not JSON`, retryable: true };
      }
      return { reason: `network error: ${message}`, retryable: true };
    }
    if (status === 404 && /model/i.test(message)) {
      return {
        reason: `model ${JSON.stringify(this.#model)} not found (HTTP 404)`,
        retryable: false,
      };
    }
    return { reason: `HTTP ${status}: ${message}`, retryable: status >= 500 };
  }
}

/**
 * Turns an error HTTP response into `{"error": "..."}` JSON, so the ollama client always finds a
 * JSON error (otherwise it logs to the console when the body is text, e.g. from a proxy).
 */
async function normalizeError(response: Response): Promise<Response> {
  if (response.ok) return response;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const text = (await response.text()).slice(0, 2_000);
    try {
      const body: unknown = JSON.parse(text);
      if (typeof body === "object" && body !== null && "error" in body) {
        message = String(body.error);
      } else if (text.trim() !== "") message = text;
    } catch {
      if (text.trim() !== "") message = text;
    }
  } catch {
    // The body could not be read (aborted); the status is enough.
  }
  return new Response(JSON.stringify({ error: message }), {
    status: response.status,
    statusText: response.statusText,
    headers: { "content-type": "application/json" },
  });
}

/** `base` with `signal` merged into every request, for one attempt's ollama client. */
function fetchWithSignal(base: typeof fetch, signal: AbortSignal): typeof fetch {
  return async (input, init) => {
    const merged = init?.signal ? AbortSignal.any([signal, init.signal]) : signal;
    return await normalizeError(await base(input, { ...init, signal: merged }));
  };
}

/** A promise that rejects when `signal` aborts (marked handled, so it never goes unhandled). */
function rejectOnAbort(signal: AbortSignal): Promise<never> {
  const promise = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  promise.catch(() => {});
  return promise;
}

/** An error of the ollama client for an HTTP error status (its class is not exported). */
function responseStatus(error: unknown): number | undefined {
  if (!(error instanceof Error) || error.name !== "ResponseError") return undefined;
  const status: unknown = (error as Error & { status_code?: unknown }).status_code;
  return typeof status === "number" ? status : undefined;
}
