import type { Request, Response } from 'express';

/** What a policy does when the backend fails: let the request through, or answer 503. */
export type FailMode = 'open' | 'closed';

/** The cost of a request for a policy: a positive integer, at most the policy's burst or limit. */
export type CostFunction = (req: Request, res: Response) => number;

/** Whether a policy refuses (`enforce`) or only reports what it would refuse (`shadow`). */
export type PolicyMode = 'enforce' | 'shadow';

/** Built-in identities a policy can be keyed by. */
export type KeyKind = 'ip' | 'principal' | 'credential';

/**
 * A custom identity: return a string, or `undefined` to fall back to the client IP. The value
 * is hashed when it is long or has characters outside `[A-Za-z0-9._:@/-]`.
 */
export type KeyFunction = (req: Request, res: Response) => string | undefined;

interface PolicyBase {
  /** Which identity the bucket belongs to. Default `ip`. */
  readonly key?: KeyKind | KeyFunction;
  /** Default `closed`. */
  readonly failMode?: FailMode;
  /**
   * What one request takes from the bucket: a positive integer (default 1), or a function of
   * the request returning one, no larger than the bucket (burst or limit). `RateLimit`
   * remaining counts in these units; a denied request takes nothing.
   */
  readonly cost?: number | CostFunction;
  /**
   * Requests that skip this policy (health checkers, internal callers): client addresses or
   * ranges (`10.0.0.0/8`, `::1`), matched against `req.ip`; any other entry is matched against
   * this policy's identity value (principal, credential or custom key, before hashing).
   * Counted as `outcome="skipped"`.
   */
  readonly allow?: readonly string[];
  /**
   * `shadow`: decided and counted as if enforced, but never refuses: the request passes,
   * `outcome="shadow_limited"` is counted and the limiter's `onShadowLimited` is told. Shadow
   * policies are left out of the RateLimit headers. Default `enforce`.
   */
  readonly mode?: PolicyMode;
  /**
   * Numbers per tier (`{ pro: { rps: 100, burst: 200 } }`): a request whose tier (the limiter's
   * `tier` function) is listed is decided with these numbers instead of the policy's own; other
   * requests use the policy's. The bucket is the same (one key per identity), so a client that
   * changes tier keeps its state. A tier may set: token bucket `rps`, `burst`; sliding window
   * `limit`, `windowSeconds`; quota and concurrency `limit`.
   */
  readonly tiers?: Readonly<Record<string, TierNumbers>>;
  /**
   * After `denials` refusals by this policy within `withinSeconds`, the identity is refused by
   * it for `blockSeconds` whatever the bucket holds (429 with `Retry-After` the block's rest;
   * counted `outcome="blocked"`), so a client hammering at the limit is not let back in at
   * each refill.
   */
  readonly penalty?: PenaltyOptions;
  /**
   * `true`: an identity may have its own numbers, set with `RateLimiter.setOverride` and kept in
   * the store (`<key>!o`), read in the same script call as the decision, so every instance
   * applies one on its next request. Costs one more read per decision; refusals of such a
   * policy are not kept in the deny cache. Default false.
   */
  readonly overrides?: boolean;
}

/** A policy's penalty: `denials` refusals within `withinSeconds` block for `blockSeconds`. */
export interface PenaltyOptions {
  readonly denials: number;
  readonly withinSeconds: number;
  readonly blockSeconds: number;
}

/** The numbers a tier sets (those its policy's algorithm has). */
export interface TierNumbers {
  readonly rps?: number;
  readonly burst?: number;
  readonly limit?: number;
  readonly windowSeconds?: number;
}

/** Which tier a request is in (`undefined`: none, the policies' own numbers). */
export type TierFunction = (req: Request, res: Response) => string | undefined;

/** A token bucket: refills `rps` tokens per second up to `burst`. */
export interface TokenBucketPolicy extends PolicyBase {
  readonly algorithm: 'token_bucket';
  readonly rps: number;
  readonly burst: number;
}

/** An exact sliding window: at most `limit` requests in any `windowSeconds`. */
export interface SlidingWindowPolicy extends PolicyBase {
  readonly algorithm: 'sliding_window';
  readonly limit: number;
  readonly windowSeconds: number;
}

/** A calendar period of a quota, aligned to UTC. */
export type QuotaPeriod = 'hour' | 'day' | 'month';

/**
 * A quota: at most `limit` per period, either a calendar `period` (UTC hour, day or month) or
 * `periodSeconds` (fixed periods aligned to multiples of it since the Unix epoch). One integer
 * per key, expiring when the period ends. Give exactly one of `period` and `periodSeconds`.
 */
export interface QuotaPolicy extends PolicyBase {
  readonly algorithm: 'quota';
  readonly limit: number;
  readonly period?: QuotaPeriod;
  readonly periodSeconds?: number;
}

/**
 * A concurrency limit: at most `limit` requests of one identity in flight at once, across every
 * instance sharing the store. A request holds a slot (a lease) from its admission until its
 * response finishes or its client goes away, and never longer than `leaseSeconds`, so a process
 * that dies (`kill -9`) cannot hold a slot for longer than that.
 */
export interface ConcurrencyPolicy extends PolicyBase {
  readonly algorithm: 'concurrency';
  readonly limit: number;
  /** The longest a request holds its slot, s; longer than your slowest request. Default 30. */
  readonly leaseSeconds?: number;
}

/** A rate limit policy, as written by the user. */
export type PolicyOptions = TokenBucketPolicy | SlidingWindowPolicy | QuotaPolicy | ConcurrencyPolicy;

/** What every check has: the bucket's key and what the request costs. */
interface CheckBase {
  readonly key: string;
  /** Requests this one counts as (1 for the middleware). */
  readonly cost: number;
  /**
   * The check's penalty: `denials` refusals by it within `windowUs` block its identity for
   * `blockUs`. Its state is one more key, `<key>!p` (same hash slot).
   */
  readonly penalty?: PenaltyCheck;
  /**
   * The identity may have its own numbers, stored at `<key>!o` as "<a> <b>" (the check's time
   * and capacity: µs per token and burst, window and limit, period and limit, lease and limit),
   * read in the same call. See {@link RateLimitStore.setOverride}.
   */
  readonly overridable?: boolean;
}

/** A check's penalty, in µs (see {@link PenaltyOptions}). */
export interface PenaltyCheck {
  readonly denials: number;
  readonly windowUs: number;
  readonly blockUs: number;
}

/** A token bucket check (GCRA): one token every `intervalUs`, at most `burst` stored. */
export interface TokenBucketCheck extends CheckBase {
  readonly algorithm: 'token_bucket';
  /** µs per token (1 s / rps). */
  readonly intervalUs: number;
  readonly burst: number;
}

/** An exact sliding window check: at most `limit` admissions in any `windowUs`. */
export interface SlidingWindowCheck extends CheckBase {
  readonly algorithm: 'sliding_window';
  readonly windowUs: number;
  readonly limit: number;
}

/**
 * A quota check: at most `limit` admissions per period. `periodUs` > 0: periods of that length
 * aligned to multiples of it since the Unix epoch (UTC hours and days are such periods);
 * `periodUs` 0: UTC calendar months.
 */
export interface QuotaCheck extends CheckBase {
  readonly algorithm: 'quota';
  readonly periodUs: number;
  readonly limit: number;
}

/**
 * A concurrency check: at most `limit` leases held at once on the key; admitted, it takes a lease
 * of `leaseUs` named `lease` (unique per request), which {@link RateLimitStore.release} gives
 * back.
 */
export interface ConcurrencyCheck extends CheckBase {
  readonly algorithm: 'concurrency';
  readonly leaseUs: number;
  readonly limit: number;
  readonly lease: string;
}

/** One check handed to a store: a key and its algorithm's numbers (times in microseconds). */
export type Check = TokenBucketCheck | SlidingWindowCheck | QuotaCheck | ConcurrencyCheck;

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
}

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
  /** Releases timers and connections the store owns (not a client passed in). */
  close(): Promise<void>;
}
