import type { Request, RequestHandler } from 'express';
import { OptionsError, positiveInteger, positiveNumber } from '../internal/options';
import { headerWriter, type HeaderForm, type HeaderWriter } from './headers';
import type { BreakerState, RateLimitObserver } from './observer';
import type { RateLimiterWarning } from './guardrails';
import type {
  ConsumeIdentity,
  Consumed,
  ConsumeOptions,
  FailMode,
  KeyFunction,
  Peeked,
  PolicyOptions,
  TierFunction,
  TierNumbers,
} from './types';
import type { RateLimitStore } from './store';

/** A route (or route prefix) and the policies that guard it. Field names as in the policies file. */
export interface SurfaceOptions {
  /** 1 to 64 of `[A-Za-z0-9_.-]`: it becomes part of a key when the surface overrides a bucket. */
  readonly surfaceId: string;
  /** An HTTP method, or `*` (default) for any. */
  readonly method?: string;
  /**
   * An exact path, or a prefix ending in `*` (`/v1/notes*`); `/*` takes every request no other
   * surface takes (a table must have one). Compared as the app's router compares paths.
   */
  readonly path: string;
  /** The policies charged, all-or-nothing; none (`[]`) only when `exempt`. */
  readonly policies: readonly string[];
  /** Its requests pass unlimited (probes, metrics); `policies` must then be empty. Default false. */
  readonly exempt?: boolean;
  /** Overrides `rps` of the surface's token-bucket policies (their buckets become the surface's own). */
  readonly rateLimitRps?: number;
  /** Overrides `burst` of the surface's token-bucket policies. */
  readonly rateLimitBurst?: number;
}

/** Circuit breaker settings (see opossum). */
export interface BreakerOptions {
  /** Failure percentage over the rolling window that opens the breaker. */
  readonly errorThresholdPercentage?: number;
  /** Calls in the window before the breaker may open. */
  readonly volumeThreshold?: number;
  /** How long the breaker stays open before one probe call is let through. */
  readonly resetTimeoutMs?: number;
  /** The rolling window of statistics. */
  readonly rollingWindowMs?: number;
}

/** Options of {@link createRateLimiter}. */
export interface RateLimiterOptions {
  readonly store: RateLimitStore;
  /** Named policies; names are lower-case `[a-z0-9_.-]`. */
  readonly policies: Readonly<Record<string, PolicyOptions>>;
  /** Routes and their policies, for {@link RateLimiter.surfaces}. */
  readonly surfaces?: readonly SurfaceOptions[];
  /** Redis key prefix: keys are `<prefix>:<policy>:{<identity>}`. */
  readonly prefix?: string;
  /** RateLimit header form. */
  readonly headers?: HeaderForm;
  /** Longest wait for the store; past it the decision counts as a backend failure. */
  readonly deadlineMs?: number;
  /** Let every policy through on backend failure (never in production: the config refuses it). */
  readonly devFailOpen?: boolean;
  /**
   * Remember denied keys in-process until their retry time, but at most `maxHoldMs` after the
   * store said so (a reset, an unblock or an override made elsewhere is seen within it); `false`
   * turns it off.
   */
  readonly denyCache?: { readonly maxKeys?: number; readonly maxHoldMs?: number } | false;
  readonly breaker?: BreakerOptions;
  /** IPv6 clients share a bucket per prefix of this length. */
  readonly ipv6Subnet?: number;
  /** The principal of a request; default `res.locals.principal.id`, then `req.user.id`. */
  readonly principal?: KeyFunction;
  /**
   * The credential of a request (hashed before use); default a JSON body's `username`, folded
   * (case, compatibility forms, marks, invisible characters and whitespace). Return the name your
   * account lookup would use: never a value the caller can vary freely.
   */
  readonly credential?: KeyFunction;
  /** Told about every decision, store call and breaker change (`createMetrics().rateLimit` for Prometheus). */
  readonly observer?: RateLimitObserver;
  /** Every policy in shadow mode (decided and counted, never refusing). Default false. */
  readonly shadow?: boolean;
  /**
   * Which tier a request is in, for policies with `tiers`. Default: `res.locals.principal.tier`,
   * then `req.user.tier` (a string), else none (the policies' own numbers).
   */
  readonly tier?: TierFunction;
  /** Told when shadow policies would have refused a request (which ones, and the request). */
  readonly onShadowLimited?: (policies: readonly string[], req: Request) => void;
  /** Told about backend failures, at most once per second. */
  readonly onBackendError?: (err: Error) => void;
  /**
   * Told when a `settle` policy's reservation could not be settled and stands as reserved: its
   * settle function threw or gave no whole number of 0 or more, or the store failed (that is
   * also a backend failure).
   */
  readonly onSettleError?: (err: Error, policy: string) => void;
  /**
   * Told once per kind of misconfiguration the limiter notices in requests: forwarding headers
   * (`X-Forwarded-For`, `Forwarded`) that `trust proxy` did not read (see guardrails.ts; the
   * observer counts every such request). Default: `process.emitWarning(message, { code })`.
   */
  readonly onWarning?: (warning: RateLimiterWarning) => void;
  /**
   * The fleet of instances sharing the store, for `failMode: 'local'` policies: while the store
   * is down each instance decides with its share of a policy's numbers (divided by `size`).
   * `size` given: that many instances. Else learned from the store while it answers: each
   * instance beats every `heartbeatMs` and counts those that beat within the last three.
   */
  readonly fleet?: { readonly size?: number; readonly heartbeatMs?: number };
}

/** Defaults of {@link createRateLimiter}. docs/rate-limiting.md's table repeats them; a unit test pins them. */
export const RATE_LIMITER_DEFAULTS = Object.freeze({
  prefix: 'rl',
  headers: 'draft-10' as HeaderForm,
  deadlineMs: 100,
  devFailOpen: false,
  denyCache: Object.freeze({ maxKeys: 10_000, maxHoldMs: 1_000 }),
  ipv6Subnet: 64,
  failMode: 'closed' as FailMode,
  key: 'ip' as const,
  /** A concurrency policy's lease, s. */
  leaseSeconds: 30,
  /** How often an instance says it is alive, for `failMode: 'local'` shares (fleet size learned from the store). */
  fleet: Object.freeze({ heartbeatMs: 1_000 }),
  breaker: Object.freeze({
    errorThresholdPercentage: 50,
    volumeThreshold: 5,
    resetTimeoutMs: 2_000,
    rollingWindowMs: 10_000,
  }),
});

export type { BreakerState } from './observer';

/** A set of policies and the middlewares that apply them. */
export interface RateLimiter {
  /** A middleware that applies these policies (all-or-nothing) to every request it sees. */
  limit(...policies: string[]): RequestHandler;
  /**
   * A middleware that applies the policies of the surface matching the request, matched as the
   * app's router matches routes (see {@link SurfaceOptions.path}). Throws when no surfaces were given.
   */
  surfaces(): RequestHandler;
  /**
   * Replaces the policies, and the surfaces when given (else the current surfaces are applied
   * with the new policies). Everything is checked first, as {@link createRateLimiter} checks
   * it: a mistake throws {@link OptionsError} and changes nothing; so does a set that drops a
   * policy a `limit(...)` middleware or a kept surface names, or that changes the algorithm
   * of a policy it keeps (the same key would hold the other algorithm's state). Then every
   * middleware handed out by `limit` and `surfaces` applies the new policies from its next
   * request on; a request already being decided finishes with the ones it started with. A
   * policy that keeps its name keeps its buckets (same keys); the deny cache is emptied.
   */
  setPolicies(policies: Readonly<Record<string, PolicyOptions>>, surfaces?: readonly SurfaceOptions[]): void;
  /**
   * Gives `identity` (as the app knows it: an address, a principal id, a credential, a custom
   * key's value) its own numbers for an `overrides: true` policy (the fields a tier may set),
   * kept in the store for `ttlSeconds` or until cleared; every instance applies them on its
   * next request (they are read in the same script call as the decision).
   */
  setOverride(policy: string, identity: string, numbers: TierNumbers, ttlSeconds?: number): Promise<void>;
  /** Removes what {@link setOverride} stored: the policy's own numbers apply again. */
  clearOverride(policy: string, identity: string): Promise<void>;
  /**
   * A decision outside a request (a WebSocket message, a queue job, a GraphQL resolver, a cron
   * task): the policies given, decided together and all-or-nothing as `limit(...)` decides them,
   * for `identity` as the app knows it (hashed and shaped as a request's would be, so the same
   * buckets), with the same deadline, breakers, fail modes, deny cache, metrics and span events.
   * Resolves to plain data (see {@link Consumed}); a policy name, identity or cost that is wrong
   * rejects with {@link OptionsError}, never counted as a decision.
   */
  consume(policies: string | readonly string[], identity: ConsumeIdentity, options?: ConsumeOptions): Promise<Consumed>;
  /**
   * What `identity` (as the app knows it) has left under `policy` now, charging nothing: its
   * key, limit, remaining, reset, whether a request would be admitted, and a penalty's block.
   */
  peek(policy: string, identity: ConsumeIdentity): Promise<Peeked>;
  /** Empties `identity`'s bucket (window, quota, leases) under `policy` and lifts its penalty; resolves to the key. */
  reset(policy: string, identity: ConsumeIdentity): Promise<string>;
  /** Refuses `identity` under `policy` (a policy with a penalty) for `seconds`, whatever its bucket holds; resolves to the key. */
  block(policy: string, identity: ConsumeIdentity, seconds: number): Promise<string>;
  /** Lifts a block (a penalty's or {@link block}'s) of `identity` under `policy`; resolves to the key. */
  unblock(policy: string, identity: ConsumeIdentity): Promise<string>;
  /** The circuit breakers' state: the worst of them (one per failure domain of the store). */
  readonly breakerState: BreakerState;
  /** Stops the breaker's timers. The store is not closed: it was passed in. */
  close(): Promise<void>;
}

const COMPONENT = 'rateLimit';

/** A value the limiter cannot take: `rateLimit: <option> must be <expectation>, got <value>`. */
export function refuse(option: string, expectation: string, value: unknown): never {
  throw new OptionsError(COMPONENT, option, expectation, value);
}

/** A rule between options broken (`unknown policy "x" in surface "s"`), about `option`. */
export function invalid(option: string, problem: string): never {
  throw new OptionsError(COMPONENT, option, '', undefined, problem);
}

export function positive(value: unknown, option: string, integer: boolean): number {
  return (integer ? positiveInteger : positiveNumber)(COMPONENT, option, value);
}

/** The options with their defaults applied and checked. */
export interface ResolvedOptions {
  readonly prefix: string;
  readonly form: HeaderForm;
  readonly writeHeaders: HeaderWriter | undefined;
  readonly deadlineMs: number;
  readonly devFailOpen: boolean;
  readonly ipv6Subnet: number;
  /** 0: no deny cache. */
  readonly denyCacheMaxKeys: number;
  readonly denyCacheMaxHoldMs: number;
  readonly breaker: Required<BreakerOptions>;
  /** The fleet's size when given (no heartbeat), and the heartbeat's period. */
  readonly fleetSize: number | undefined;
  readonly heartbeatMs: number;
}

/** Applies the defaults and checks every option: a mistake throws here, never per request. */
export function resolveOptions(options: RateLimiterOptions): ResolvedOptions {
  const d = RATE_LIMITER_DEFAULTS;
  // Renamed in 0.x: an old option must not be ignored in silence.
  if ('metrics' in options) invalid('metrics', 'the metrics option is now called observer: pass createMetrics().rateLimit as observer');
  const prefix = options.prefix ?? d.prefix;
  const form = options.headers === undefined ? d.headers : options.headers;
  if (form !== false && form !== 'draft-10' && form !== 'draft-7' && form !== 'draft-6') {
    refuse('headers', '"draft-10", "draft-7", "draft-6" or false', form);
  }
  const deadlineMs = positive(options.deadlineMs ?? d.deadlineMs, 'deadlineMs', true);
  const ipv6Subnet = options.ipv6Subnet ?? d.ipv6Subnet;
  if (!Number.isInteger(ipv6Subnet) || ipv6Subnet < 1 || ipv6Subnet > 128) refuse('ipv6Subnet', 'an integer from 1 to 128', ipv6Subnet);
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9_.:-]{1,32}$/.test(prefix)) refuse('prefix', '1 to 32 of [A-Za-z0-9_.:-]', prefix);
  return {
    prefix,
    form,
    writeHeaders: headerWriter(form),
    deadlineMs,
    devFailOpen: options.devFailOpen ?? d.devFailOpen,
    ipv6Subnet,
    denyCacheMaxKeys: options.denyCache === false ? 0 : (options.denyCache?.maxKeys ?? d.denyCache.maxKeys),
    denyCacheMaxHoldMs: options.denyCache === false ? 0 : (options.denyCache?.maxHoldMs ?? d.denyCache.maxHoldMs),
    breaker: { ...d.breaker, ...options.breaker },
    fleetSize: options.fleet?.size === undefined ? undefined : positive(options.fleet.size, 'fleet.size', true),
    heartbeatMs: positive(options.fleet?.heartbeatMs ?? d.fleet.heartbeatMs, 'fleet.heartbeatMs', true),
  };
}
