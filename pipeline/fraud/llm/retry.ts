/**
 * Retry with exponential backoff and jitter, for the LLM judge's calls: an attempt either succeeds
 * or fails with a reason that says whether another attempt may help; shutdown (the signal) ends
 * the wait between attempts at once.
 *
 * @module
 */

/** Why an attempt failed, and whether another attempt may help. */
export interface Failure {
  reason: string;
  retryable: boolean;
}

/** Options of {@linkcode retry}. */
export interface RetryOptions {
  /** Extra attempts after the first for retryable failures. */
  retries: number;
  /** Base backoff in ms before a retry; doubles per attempt, with jitter. */
  backoffMs: number;
  /** Longest backoff, in ms. @default 10000 */
  maxBackoffMs?: number;
  /** Aborted on shutdown: no further attempt, no wait. */
  signal: AbortSignal;
}

/** How a run of attempts ended: a success, the last failure, or the signal aborted. */
export type Retried<T> =
  | { ok: true; value: T; attempts: number }
  | { ok: false; failure: Failure; attempts: number }
  | { ok: false; aborted: true };

const MAX_BACKOFF_MS = 10_000;

/**
 * Runs `attempt` until it succeeds, fails with a failure that is not retryable, or has been retried
 * `retries` times. Checks the signal after every attempt. Rejects only if `attempt` does.
 */
export async function retry<T extends object>(
  attempt: () => Promise<T | Failure>,
  options: RetryOptions,
): Promise<Retried<Exclude<T, Failure>>> {
  const { retries, backoffMs, maxBackoffMs = MAX_BACKOFF_MS, signal } = options;
  for (let n = 1;; n++) {
    const result = await attempt();
    if (signal.aborted) return { ok: false, aborted: true };
    if (!isFailure(result)) return { ok: true, value: result as Exclude<T, Failure>, attempts: n };
    if (!result.retryable || n > retries) return { ok: false, failure: result, attempts: n };
    const backoff = Math.min(maxBackoffMs, backoffMs * 2 ** (n - 1));
    const jittered = backoff * (0.5 + Math.random() * 0.5);
    if (!await sleep(jittered, signal)) return { ok: false, aborted: true };
  }
}

function isFailure(value: object): value is Failure {
  return "retryable" in value;
}

/** Resolves `true` after `ms`, or `false` as soon as `signal` aborts; leaves no timer behind. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
