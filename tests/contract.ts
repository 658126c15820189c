/**
 * One way every contract suite registers its cases (window store, rate limiter, durable log,
 * object store): each case is a `Deno.test` named `<implementation>: <case>`, on a fixture of its
 * own that is cleaned up whether the case passes or fails. As in Hono's `common.case.test.ts`,
 * every implementation of an interface runs the same cases.
 *
 * @module
 */

/** A fixture: what a case works on, and how to clean up after it. */
export interface Fixture {
  cleanup(): Promise<void>;
}

/** Registers `cases` for the implementation `name`, each on a fresh fixture from `make()`. */
export function registerContract<F extends Fixture, C = F>(
  name: string,
  cases: Record<string, (context: C) => Promise<void>>,
  make: () => Promise<F>,
  context: (fixture: F) => C = (fixture) => fixture as unknown as C,
): void {
  for (const [title, body] of Object.entries(cases)) {
    Deno.test(`${name}: ${title}`, async () => {
      const fixture = await make();
      try {
        await body(context(fixture));
      } finally {
        await fixture.cleanup();
      }
    });
  }
}
