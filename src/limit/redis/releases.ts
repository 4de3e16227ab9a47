import type { Check } from '../types';

/** What a release without leases returns. */
const RELEASED = Promise.resolve();

/** The releases of one slot in one turn: they share one promise. */
interface ReleaseBatch {
  readonly checks: Check[];
  readonly done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

export interface ReleaseBatcherOptions {
  /** Most leases in one call. */
  readonly maxBatch: number;
  /** The hash slot of a key, on Cluster; absent: one server. */
  readonly slotOf: ((key: string) => number) | undefined;
  /** Gives back the leases of `checks` (one slot's) in one call. */
  readonly send: (checks: readonly Check[]) => Promise<unknown>;
}

/**
 * Gives leases back in batches: the releases of one event-loop turn go in one call per slot (one
 * on a single server), and those of a slot share one promise, so a release allocates no promise
 * of its own. Returns the store's `release`.
 */
export function createReleaseBatcher(options: ReleaseBatcherOptions): (checks: readonly Check[]) => Promise<void> {
  const { maxBatch, slotOf, send } = options;
  let open = new Map<number, ReleaseBatch>();

  function batchOf(slot: number): ReleaseBatch {
    const batch = open.get(slot);
    if (batch !== undefined) return batch;
    if (open.size === 0) setImmediate(flush);
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const created = { checks: [], done, resolve, reject };
    open.set(slot, created);
    return created;
  }

  function flush(): void {
    const batches = open;
    open = new Map();
    for (const batch of batches.values()) {
      const { checks } = batch;
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < checks.length; i += maxBatch) calls.push(send(checks.slice(i, i + maxBatch)));
      (calls.length === 1 ? (calls[0] as Promise<unknown>) : Promise.all(calls)).then(
        () => batch.resolve(),
        (err: unknown) => batch.reject(err),
      );
    }
  }

  return (checks) => {
    // One request's leases share its identity's slot, as its decision did (unless it was
    // decided across slots: then each slot's releases go with that slot's).
    let batch: ReleaseBatch | undefined;
    let more: Promise<void>[] | undefined;
    for (const c of checks) {
      if (c.algorithm !== 'concurrency') continue;
      const b = batchOf(slotOf === undefined ? 0 : slotOf(c.key));
      b.checks.push(c);
      if (batch === undefined) batch = b;
      else if (b !== batch && !(more ??= [batch.done]).includes(b.done)) more.push(b.done);
    }
    if (batch === undefined) return RELEASED;
    return more === undefined ? batch.done : Promise.all(more).then(() => undefined);
  };
}
