import type { Request, Response } from 'express';

/**
 * What a policy does when the backend fails: let the request through (`open`), answer 503
 * (`closed`), or keep deciding in process with this instance's share of its numbers (`local`).
 */
export type FailMode = 'open' | 'closed' | 'local';

/** The cost of a request for a policy: a positive integer, at most the policy's burst or limit. */
export type CostFunction = (req: Request, res: Response) => number;

/**
 * What a request really cost a policy, known when its response ends (the tokens a model used,
 * the rows a query read): a whole number, 0 or more. The difference from what was reserved at
 * admission is refunded or charged then.
 */
export type SettleFunction = (req: Request, res: Response) => number;

/**
 * How a policy's cost is settled when the response ends: `failures` keeps the reservation only for
 * a status of 400 or more (or a client gone before the response), refunds it otherwise; a function gives the real cost.
 */
export type Settle = 'failures' | SettleFunction;

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
  /**
   * Reserve, then settle: the policy's `cost` is reserved at admission (all-or-nothing with the
   * request's other policies, as always) and settled when the response ends, to nothing for a
   * success (`'failures'`) or to what a function says the request really cost. A refund never
   * takes a bucket past full; a charge is never refused (it may leave the bucket in debt, paid
   * off before the identity is admitted again). Token bucket, sliding window and quota policies;
   * the store needs `adjust`.
   */
  readonly settle?: Settle;
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

/** A sliding window of constant size: two fixed windows' counts (docs/rate-limiting.md: its bound). */
export interface SlidingWindowCounterPolicy extends PolicyBase {
  readonly algorithm: 'sliding_window_counter';
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
export type PolicyOptions = TokenBucketPolicy | SlidingWindowPolicy | SlidingWindowCounterPolicy | QuotaPolicy | ConcurrencyPolicy;

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

/** A sliding window counter check (window-counter.ts): windows of `windowUs` aligned to the epoch. */
export interface SlidingWindowCounterCheck extends CheckBase {
  readonly algorithm: 'sliding_window_counter';
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
export type Check = TokenBucketCheck | SlidingWindowCheck | SlidingWindowCounterCheck | QuotaCheck | ConcurrencyCheck;

/**
 * The identity a decision outside a request is for, as the app knows it: one value for every
 * policy, or one per kind of key (`ip`, `principal`, `credential`, `custom` for a policy whose
 * `key` is a function). It is hashed and shaped as the middleware shapes a request's.
 */
export type ConsumeIdentity = string | Readonly<Partial<Record<KeyKind | 'custom', string>>>;

/** Options of `RateLimiter.consume`. */
export interface ConsumeOptions {
  /** What this decision takes from each policy: a positive integer no larger than its bucket. Default: each policy's own `cost` when a number, else 1. */
  readonly cost?: number;
  /** The tier whose numbers apply (policies with `tiers`); default the policies' own. */
  readonly tier?: string;
}

/** One policy of a {@link Consumed} decision. */
export interface ConsumedPolicy {
  readonly name: string;
  /** The policy's number: a bucket's burst, a window's or a quota's limit, concurrent leases. */
  readonly limit: number;
  /** What is left after this decision, in the policy's units (0 or more). */
  readonly remaining: number;
  /** Milliseconds until the policy is full (or its window or period ends) again. */
  readonly resetMs: number;
}

/**
 * Who decided: Redis (or the store), the in-process memory of refusals, a fail mode while the
 * store failed, or (`local`) this instance's share of `failMode: 'local'` policies while it failed.
 */
export type DecidedBy = 'store' | 'deny_cache' | 'fail_open' | 'fail_closed' | 'local';

/** A decision of `RateLimiter.consume`: plain data, and the leases to give back. */
export interface Consumed {
  readonly allowed: boolean;
  /** 0 when allowed; else milliseconds until asking again can succeed (1000 on a closed fail mode). */
  readonly retryAfterMs: number;
  /** The enforced policies, in the order given (shadow policies are left out, as from the headers). */
  readonly policies: readonly ConsumedPolicy[];
  readonly decidedBy: DecidedBy;
  /** Refused by a penalty's block (not by the numbers). */
  readonly blocked: boolean;
  /** Why the store failed, when a fail mode decided (said as a 503's detail would say it). */
  readonly failure?: string;
  /** Gives back the concurrency leases an admission holds (a no-op otherwise); call it when the work is done. */
  release(): Promise<void>;
}

/** What `RateLimiter.peek` tells of one identity under one policy, charging nothing. */
export interface Peeked {
  readonly policy: string;
  /** The Redis key (or memory key) of the identity's bucket. */
  readonly key: string;
  readonly limit: number;
  readonly remaining: number;
  /** Milliseconds until the bucket is full (or its window or period ends) again. */
  readonly resetMs: number;
  /** Whether a request of the policy's cost (1 when a function) would be admitted now. */
  readonly allowed: boolean;
  /** 0 when allowed; else milliseconds until one would be. */
  readonly retryAfterMs: number;
  /** Refused by a penalty's block now. */
  readonly blocked: boolean;
}
