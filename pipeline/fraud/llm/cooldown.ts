/**
 * The LLM judge's per-user cooldown: a noisy user does not cost one model call per alert. While a
 * call for a user is in progress, or within the cooldown after its verdict, a call with the same
 * key (e.g. the same alert, asked again) gets that outcome back; a call with another key is
 * refused, saying until when.
 *
 * @module
 */

/** What {@linkcode UserCooldown.check} finds: an outcome to reuse, or a reason to refuse. */
export type CooldownCheck<T> = { reuse: Promise<T> | T } | { refuse: string } | undefined;

/** Options of {@linkcode UserCooldown}. */
export interface UserCooldownOptions {
  /** How long a verdict holds for its user, in ms. */
  cooldownMs: number;
  /** Clock, in ms since the epoch. */
  now: () => number;
  /** Most users remembered; the oldest go first. @default 10000 */
  maxUsers?: number;
}

interface Cached<T> {
  at: number;
  key: string | undefined;
  outcome: T;
}

interface Pending<T> {
  key: string | undefined;
  promise: Promise<T>;
}

const MAX_CACHED_USERS = 10_000;

/** The call in progress and the last verdict, per user. */
export class UserCooldown<T> {
  readonly #cooldownMs: number;
  readonly #now: () => number;
  readonly #maxUsers: number;
  /** Last verdict per user, oldest first (re-inserted on update), pruned past the cooldown. */
  readonly #cache = new Map<string, Cached<T>>();
  /** The call in progress per user. */
  readonly #pending = new Map<string, Pending<T>>();

  constructor(options: UserCooldownOptions) {
    this.#cooldownMs = options.cooldownMs;
    this.#now = options.now;
    this.#maxUsers = options.maxUsers ?? MAX_CACHED_USERS;
  }

  /** Whether a call for `userId` with `key` must reuse an outcome, be refused, or may go ahead. */
  check(userId: string, key: string | undefined): CooldownCheck<T> {
    const pending = this.#pending.get(userId);
    if (pending !== undefined) {
      if (key !== undefined && pending.key === key) return { reuse: pending.promise };
      return { refuse: "cooldown: a verdict for this user is in progress" };
    }
    const cached = this.#cachedFor(userId);
    if (cached !== undefined) {
      if (key !== undefined && cached.key === key) return { reuse: cached.outcome };
      const until = new Date(cached.at + this.#cooldownMs).toISOString();
      return { refuse: `cooldown until ${until}` };
    }
    return undefined;
  }

  /** Marks `promise` as the call in progress for `userId` until it settles. */
  track(userId: string, key: string | undefined, promise: Promise<T>): void {
    const entry = { key, promise };
    this.#pending.set(userId, entry);
    promise.then(() => {
      if (this.#pending.get(userId) === entry) this.#pending.delete(userId);
    });
  }

  /** Starts the user's cooldown with this verdict. */
  remember(userId: string, key: string | undefined, outcome: T): void {
    const now = this.#now();
    this.#cache.delete(userId);
    this.#cache.set(userId, { at: now, key, outcome });
    // Oldest first: drop expired entries, and the oldest beyond the cap.
    for (const [user, entry] of this.#cache) {
      if (this.#cache.size <= this.#maxUsers && now - entry.at < this.#cooldownMs) break;
      this.#cache.delete(user);
    }
  }

  #cachedFor(userId: string): Cached<T> | undefined {
    const cached = this.#cache.get(userId);
    if (cached === undefined) return undefined;
    if (this.#now() - cached.at < this.#cooldownMs) return cached;
    this.#cache.delete(userId);
    return undefined;
  }
}
