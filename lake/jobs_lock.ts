/**
 * One silver or gold run at a time per lake, across processes: an flock on local disk, where a
 * crashed holder's lock goes with it; on object storage (no flock) a lease object created with
 * put-if-absent, which a crashed holder leaves behind until it expires. A lease taken over just as
 * it expires could, rarely, let two runs overlap: the tables' commits then refuse the second run's
 * stale partitions (see `delta/replace.ts`), so the lock only saves work, it is not what keeps the
 * tables right.
 *
 * @module
 */
import { JOB_KEYS, readJson } from "./layout.ts";
import type { Lock, LockingStore, ObjectStore } from "./storage/store.ts";

/** The jobs lock object on a store without locks. */
const LEASE_KEY = "_progress/jobs.lease";

function canLock(store: ObjectStore): store is LockingStore {
  return typeof (store as Partial<LockingStore>).lock === "function";
}

/** The jobs lock, or `undefined` when another run holds it. */
export async function tryJobsLock(
  store: ObjectStore,
  { leaseMs = 2 * 3_600_000, now = Date.now }: { leaseMs?: number; now?: () => number } = {},
): Promise<Lock | undefined> {
  if (canLock(store)) return await store.lock(JOB_KEYS.lock, { wait: false });
  const owner = crypto.randomUUID();
  const lease = () =>
    new TextEncoder().encode(JSON.stringify({ owner, expires_at: now() + leaseMs }));
  if (!(await store.putIfAbsent(LEASE_KEY, lease()))) {
    const held = await readJson<{ expires_at?: number }>(store, LEASE_KEY).catch(() => undefined);
    if (held && (held.expires_at ?? 0) > now()) return undefined;
    // Expired (its holder died): take it over.
    await store.delete(LEASE_KEY);
    if (!(await store.putIfAbsent(LEASE_KEY, lease()))) return undefined;
  }
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      const held = await readJson<{ owner?: string }>(store, LEASE_KEY).catch(() => undefined);
      if (held?.owner === owner) await store.delete(LEASE_KEY);
    },
  };
}
