import type { Check } from './types';

// The store contract: what the limiter asks of a store (docs/development.md, "Writing a store").

/**
 * A store's answer for the checks of one request, decided together. `remaining[i]` and
 * `resetUs[i]` belong to `checks[i]`.
 */
export interface Decision {
  readonly allowed: boolean;
  /** 0 when allowed; else µs until the request would be admitted. */
  readonly retryAfterUs: number;
  readonly remaining: readonly number[];
  /** µs until each check is full again. */
  readonly resetUs: readonly number[];
  /** Bit i: check i refused because its penalty blocks the identity (absent: none did). */
  readonly blocked?: number;
  /**
   * An admission's time on the store's clock (µs): one for every check, or one per check when
   * several servers decided (Cluster slots). {@link RateLimitStore.adjust} takes it back to find
   * what the admission added. Needed for `settle` policies.
   */
  readonly atUs?: number | readonly number[];
}

/** The store's clock at the admission of check `i` of `d` (see {@link Decision.atUs}). */
export const admittedAt = (d: Decision, i: number): number =>
  typeof d.atUs === 'number' ? d.atUs : ((d.atUs?.[i] ?? Number.NaN) as number);

/**
 * Runs one backend call of a decision on behalf of the failure domain of `key` (see
 * {@link RateLimitStore.partition}); the limiter passes one that goes through that domain's
 * circuit breaker, so a decision spanning several domains charges each call to its own.
 */
export type CallGuard = <T>(key: string, call: () => Promise<T>) => Promise<T>;

/**
 * Options of {@link RateLimitStore.decide}: how a store hears that the caller stopped waiting
 * (the limiter's deadline). One way per kind of store:
 * - a store that answers at once, in process (the memory store): none; it ignores them;
 * - a store that makes **one** backend call per decision (the Redis store, most decisions): it
 *   calls `abandoned()` when the reply lands, and gives an admission back when it is true;
 * - a store that makes **several** calls for one decision (the Redis store across Cluster slots):
 *   it listens to `signal`, sends nothing more once it aborts, and gives back what it took.
 * `guard` wraps each backend call, whichever the kind.
 */
export interface DecideOptions {
  /** Wraps each backend call (default: run it as is): the breaker of the call's domain. */
  readonly guard?: CallGuard;
  /**
   * Aborted when the caller stops waiting (its deadline). A store making several calls for one
   * decision sends no more, gives back what it took, and, when the answer is already a denial,
   * resolves with it at once. An admission whose reply arrives after the abort is given back:
   * the caller answered without it.
   */
  readonly signal?: AbortSignal;
  /**
   * True once the caller has stopped waiting: the moment `signal` aborts, asked without it. A
   * store that only needs to know this when its reply lands calls `abandoned()` when it is given
   * and leaves `signal` alone: the limiter makes the AbortSignal only when `signal` is read
   * (creating one costs microseconds on Node 20, more than the rest of a decision's local work).
   * Call it on the options object (`options.abandoned()`), as a method.
   */
  readonly abandoned?: () => boolean;
}

/** An identity's own numbers for an overridable check: those of {@link timeOf} and {@link capacityOf}. */
export interface OverrideNumbers {
  /** µs per token, the window, the period or the lease. */
  readonly timeUs: number;
  /** The burst or the limit. */
  readonly capacity: number;
}

/**
 * A store whose backend fails in parts (a Redis Cluster's shards): the limiter keeps one circuit
 * breaker per failure domain and follows the domains as they change. A store of one server needs
 * none of it (the Redis store on one server gives only `onRecover`).
 */
export interface FailureDomains {
  /**
   * The failure domain a key lives in (on Redis Cluster: the master now serving its slot). The
   * limiter keeps one circuit breaker per domain, so one failed shard does not stop the others,
   * and a key whose slot moved to a promoted replica starts on a fresh breaker. Default: one
   * domain.
   */
  partition?(key: string): string;
  /**
   * Registers `listener` to run when the backend has (re)connected: with a domain (a
   * {@link partition} value) when one node of it came back, without one when all of it did. The
   * limiter closes the open breakers of what recovered. Returns what takes the listener off.
   */
  onRecover?(listener: (domain?: string) => void): () => void;
  /**
   * Registers `listener` to run with the failure domains that serve keys now, whenever that may
   * have changed (on Cluster: after each slot-map refresh), so the limiter can forget the
   * breakers of domains that serve nothing any more (a failed master, after its replica took
   * over). Returns what takes the listener off.
   */
  onTopology?(listener: (domains: ReadonlySet<string>) => void): () => void;
}

/**
 * Where buckets live. `decide` is all-or-nothing over its checks and never admits past a limit;
 * being limited is a result, never a rejection. A rejection means the backend failed. Only
 * `name`, `decide` and `close` are required: `release` for concurrency policies, `setOverride`
 * and `clearOverride` for overrides, {@link FailureDomains} for a backend that fails in parts.
 * docs/development.md ("Writing a store") walks through them with the contract suite.
 */
export interface RateLimitStore extends FailureDomains {
  /** For metrics and logs: `redis`, `memory`, ... */
  readonly name: string;
  decide(checks: readonly Check[], options?: DecideOptions): Promise<Decision>;
  /**
   * Gives back the leases of the concurrency checks among `checks` (of an admitted decision),
   * when the request is over; the other checks are ignored. Needed for concurrency policies.
   */
  release?(checks: readonly Check[]): Promise<void>;
  /**
   * Stores an identity's own numbers for an overridable check's key, for `ttlMs` or until
   * cleared, read with the key's next decision. Needed for overrides.
   */
  setOverride?(key: string, numbers: OverrideNumbers, ttlMs?: number): Promise<void>;
  /** Removes what {@link setOverride} stored for `key`. */
  clearOverride?(key: string): Promise<void>;
  /**
   * What `checks` have left now, charging nothing and counting no strike: `allowed` when a
   * decision of their costs would be admitted, and a penalty's block as `blocked`. Needed for
   * `peek`.
   */
  peek?(checks: readonly Check[]): Promise<Decision>;
  /** Deletes the state of `key` (its bucket, window, quota or leases) and of its penalty. Needed for `reset`. */
  reset?(key: string): Promise<void>;
  /** Blocks `key` by its penalty for `ms` (a check with a penalty is refused until then); `0` lifts a block. Needed for `block`/`unblock`. */
  block?(key: string, ms: number): Promise<void>;
  /**
   * Settles an admitted check: `delta` more (a charge) or less (a refund) than it took when it
   * was admitted at `atUs` (the decision's {@link Decision.atUs}), atomically. A refund never
   * takes the bucket past what it held before that admission nor past full (a sliding window's
   * admission that has left the window, a quota's period that has ended: nothing to refund); a
   * charge is never refused and may leave the bucket in debt. Token bucket, sliding window and
   * quota checks; needed for `settle` policies.
   */
  adjust?(check: Check, delta: number, atUs: number): Promise<void>;
  /**
   * One heartbeat of limiter instance `member` into the fleet at `key` (a set of instances with
   * the time of their last beat, on the store's clock); resolves with how many instances beat
   * within the last `ttlMs`, this one included. The limiter learns from it its share of a
   * `failMode: 'local'` policy's numbers for when the store is down. Optional: without it the
   * share comes from the limiter's `fleet.size` (default 1).
   */
  fleet?(key: string, member: string, ttlMs: number): Promise<number>;
  /** Releases timers and connections the store owns (not a client passed in). */
  close(): Promise<void>;
}
