import { randomBytes } from 'node:crypto';
import { recordingSpan } from '../internal/recording-span';
import { policyHeaderValue, type HeaderForm, type HeaderPolicy } from './headers';
import { allowList, type AllowedTest } from './allow-list';
import type { Identities, IdentityOf } from './identity';
import type { DecisionOutcome, RateLimitObserver } from './observer';
import { invalid, positive, RATE_LIMITER_DEFAULTS, refuse, type SurfaceOptions } from './options';
import type { Check, CostFunction, FailMode, PenaltyCheck, PenaltyOptions, PolicyOptions, TierNumbers, TokenBucketPolicy } from './types';

/** A policy name: a lower-case letter, then up to 63 of `[a-z0-9_.-]`. */
export const POLICY_NAME = /^[a-z][a-z0-9_.-]{0,63}$/;
export const MICROS = 1_000_000;

/** A policy ready for requests: its check's numbers, its identity and its header entry. */
export interface CompiledPolicy {
  readonly name: string;
  /** Name inside the key: the policy, or `policy@surface` when a surface overrides its numbers. */
  readonly keyName: string;
  readonly algorithm: PolicyOptions['algorithm'];
  /** The check of one request for the bucket `key`, taking `cost` from it. */
  readonly check: (key: string, cost: number) => Check;
  /** The fixed cost, or the function that gives each request's (checked per request). */
  readonly cost: number | CostFunction;
  /** The bucket's size (burst or limit): no cost may exceed it. */
  readonly capacity: number;
  /** Whether a request skips this policy (its `allow` list); absent without one. */
  readonly allowed: AllowedTest | undefined;
  /** Decided and counted, never refusing. */
  readonly shadow: boolean;
  /** Its identities may have their own numbers in the store (`overrides: true`). */
  readonly overridable?: boolean;
  readonly failMode: FailMode;
  readonly identity: IdentityOf;
  readonly header: HeaderPolicy;
}

/** The policies one middleware applies, with everything a request needs precomputed. */
export interface Plan {
  readonly label: string;
  readonly policies: readonly CompiledPolicy[];
  /** The enforced policies' header entries (shadow policies are left out of the headers). */
  readonly headerPolicies: readonly HeaderPolicy[];
  readonly policyHeader: string;
  /** Which checks the header entries belong to, when not all (shadow policies left out). */
  readonly headerPick: readonly number[] | undefined;
  /** Bit i: policy i is in shadow mode. */
  readonly shadowMask: number;
  readonly failOpen: boolean;
  /** Some policy has an allow list: requests may skip policies (see {@link Plan.without}). */
  readonly skippable: boolean;
  /** Some policy is a concurrency limit: an admitted request holds leases until it is over. */
  readonly holdsLeases: boolean;
  /** Some policy has a penalty: its refusals must reach the store (each is a strike). */
  readonly penalized: boolean;
  /**
   * A refusal may be remembered in the deny cache: no policy is a concurrency limit (its denial
   * lasts until some request finishes, not a known time) and none is overridable (a refusal may
   * not hold once an override is set on another instance).
   */
  readonly cachesDenials: boolean;
  /** The tier whose numbers this plan applies (undefined: the policies' own). */
  readonly tier: string | undefined;
  /** Some policy has tiers: each request's tier picks the plan ({@link Plan.forTier}). */
  readonly tiered: boolean;
  /** The plan with the numbers of `tier` for the policies that have it (this plan for other tiers). */
  forTier(tier: string | undefined): Plan;
  /** The plan for the policies not in `mask` (bit i: policy i skipped), made once per mask. */
  without(mask: number): Plan;
  readonly counters: {
    /** Counts `skipped` for the policies in `mask`. */
    readonly skipped: (mask: number) => void;
    /** Counts `shadow_limited` for the policies in `mask` (shadow policies that would have refused). */
    readonly shadowLimited: (mask: number) => void;
    readonly allowed: () => void;
    /**
     * Counts `limited` for the policies that denied (`blocked` for those in `blocked`, bit i:
     * refused by policy i's penalty block), `denied_by_other` for the rest.
     */
    readonly limited: (remaining: readonly number[], checks: readonly Check[], blocked: number) => void;
    readonly failedOpen: () => void;
    readonly failedClosed: () => void;
  };
}

/** Lease ids: this process's random prefix and a counter (base 36). */
const LEASE_PREFIX = randomBytes(6).toString('base64url');
let leaseCount = 0;
const nextLease = () => `${LEASE_PREFIX}${(++leaseCount).toString(36)}`;

const QUOTA_PERIODS = { hour: 3_600 * MICROS, day: 86_400 * MICROS, month: 0 } as const;

/** A quota's period in µs (0: the calendar month) from exactly one of `period` and `periodSeconds`. */
function quotaPeriodUs(name: string, period: unknown, periodSeconds: unknown): number {
  if ((period === undefined) === (periodSeconds === undefined)) {
    refuse(`policy "${name}": period`, 'exactly one of period ("hour", "day", "month") and periodSeconds', { period, periodSeconds });
  }
  if (period !== undefined) {
    if (typeof period !== 'string' || !Object.hasOwn(QUOTA_PERIODS, period))
      refuse(`policy "${name}": period`, '"hour", "day" or "month"', period);
    return QUOTA_PERIODS[period as keyof typeof QUOTA_PERIODS];
  }
  if (typeof periodSeconds !== 'number' || !Number.isInteger(periodSeconds) || periodSeconds < 1 || periodSeconds > 366 * 86_400) {
    refuse(`policy "${name}": periodSeconds`, 'a whole number of seconds from 1 to 31622400 (366 days)', periodSeconds);
  }
  return periodSeconds * MICROS;
}

/** A tier's name: 1 to 64 of `[A-Za-z0-9_.-]`. */
export const TIER_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** The numbers a tier may set, per algorithm. */
const TIER_FIELDS: Readonly<Record<PolicyOptions['algorithm'], readonly string[]>> = {
  token_bucket: ['rps', 'burst'],
  sliding_window: ['limit', 'windowSeconds'],
  quota: ['limit'],
  concurrency: ['limit'],
};

/** `numbers` for a tier or an override of `p` (`label` names it): an object of the fields its algorithm has. */
function checkNumberFields(label: string, p: PolicyOptions, numbers: unknown): asserts numbers is TierNumbers {
  const fields = TIER_FIELDS[p.algorithm] ?? [];
  if (typeof numbers !== 'object' || numbers === null) refuse(label, `an object of ${fields.join(', ')}`, numbers);
  for (const field of Object.keys(numbers)) {
    if (!fields.includes(field)) refuse(`${label}: ${field}`, `one of ${fields.join(', ')} (${p.algorithm})`, field);
  }
}

/** A policy's `tiers`, checked (names and fields; the numbers are checked when compiled). */
function tiersOf(name: string, p: PolicyOptions): Readonly<Record<string, TierNumbers>> | undefined {
  const tiers = p.tiers;
  if (tiers === undefined) return undefined;
  if (typeof tiers !== 'object' || tiers === null || Array.isArray(tiers)) refuse(`policy "${name}": tiers`, 'an object of tiers', tiers);
  for (const [tier, numbers] of Object.entries(tiers)) {
    if (!TIER_NAME.test(tier)) refuse(`policy "${name}": tiers`, `tier names matching ${TIER_NAME}`, tier);
    checkNumberFields(`policy "${name}" tier "${tier}"`, p, numbers);
  }
  return tiers;
}

/**
 * Policy `name` with an override's `numbers` over its own (the fields a tier may set), for the
 * planner to compile: the override's numbers are checked and converted as the policy's are.
 */
export function overridden(name: string, p: PolicyOptions, numbers: TierNumbers): PolicyOptions {
  checkNumberFields(`override of policy "${name}"`, p, numbers);
  return { ...p, ...numbers } as PolicyOptions;
}

/** A policy's penalty in µs, checked; `undefined` without one. */
function penaltyOf(name: string, penalty: PenaltyOptions | undefined): PenaltyCheck | undefined {
  if (penalty === undefined) return undefined;
  if (typeof penalty !== 'object' || penalty === null)
    refuse(`policy "${name}": penalty`, '{ denials, withinSeconds, blockSeconds }', penalty);
  const denials = positive(penalty.denials, `policy "${name}": penalty.denials`, true);
  const within = positive(penalty.withinSeconds, `policy "${name}": penalty.withinSeconds`, false);
  const block = positive(penalty.blockSeconds, `policy "${name}": penalty.blockSeconds`, false);
  return { denials, windowUs: Math.max(1000, Math.round(within * MICROS)), blockUs: Math.max(1000, Math.round(block * MICROS)) };
}

/** Whether check `i` of a denied decision is one that denied it (it had less left than the request costs). */
export const denies = (remaining: readonly number[], checks: readonly Check[], i: number) =>
  (remaining[i] as number) < (checks[i] as Check).cost;

export interface PlannerOptions {
  readonly policies: Readonly<Record<string, PolicyOptions>>;
  readonly identities: Identities;
  readonly form: HeaderForm;
  readonly devFailOpen: boolean;
  readonly observer: RateLimitObserver | undefined;
  /** For span events. */
  readonly storeName: string;
  /** Every policy in shadow mode. */
  readonly shadow: boolean;
  /** `false`: the store cannot give leases back (no `release`), so concurrency policies are refused. */
  readonly canRelease?: boolean;
  /** `false`: the store keeps no overrides (no `setOverride`), so `overrides: true` is refused. */
  readonly canOverride?: boolean;
}

/**
 * Compiles every policy once (a mistake throws here) and builds plans from them; a surface
 * that overrides a token bucket's numbers gets a bucket of its own (`policy@surface`).
 */
export function createPlanner(options: PlannerOptions): (names: readonly string[], surface?: SurfaceOptions) => Plan {
  const d = RATE_LIMITER_DEFAULTS;
  const { identities, form, observer } = options;

  /** {@link compileNumbers}, with the policy's penalty on every check it makes. */
  function compilePolicy(name: string, overrides?: SurfaceOptions, tier?: string): CompiledPolicy {
    const c = compileNumbers(name, overrides, tier);
    const own = options.policies[name];
    const penalty = penaltyOf(name, own?.penalty);
    const overridable = own?.overrides ?? false;
    if (typeof overridable !== 'boolean') refuse(`policy "${name}": overrides`, 'true or false', overridable);
    if (penalty === undefined && !overridable) return c;
    if (overridable && options.canOverride === false) invalid('policies', `policy "${name}": overrides need a store with setOverride()`);
    const check = c.check;
    const extra = { ...(penalty === undefined ? {} : { penalty }), ...(overridable ? { overridable: true } : {}) };
    // Each call makes a fresh check: the penalty and the flag go on it, no second object.
    return { ...c, overridable, check: (key, cost) => Object.assign(check(key, cost), extra) };
  }

  function compileNumbers(name: string, overrides?: SurfaceOptions, tier?: string): CompiledPolicy {
    const own = options.policies[name];
    if (own === undefined)
      invalid(overrides ? 'surfaces' : 'policies', `unknown policy "${name}"${overrides ? ` in surface "${overrides.surfaceId}"` : ''}`);
    const tierNumbers = tiersOf(name, own)?.[tier ?? ''];
    // The tier's numbers, where it has them, over the policy's own (and a surface's override).
    const p = (tierNumbers === undefined ? own : { ...own, ...tierNumbers }) as PolicyOptions;
    const label = tierNumbers === undefined ? `policy "${name}"` : `policy "${name}" tier "${tier}"`;
    const failMode = p.failMode ?? d.failMode;
    if (failMode !== 'open' && failMode !== 'closed') refuse(`policy "${name}": failMode`, '"open" or "closed"', failMode);
    const key = p.key ?? d.key;
    let identity: IdentityOf;
    if (typeof key === 'function') identity = identities.custom(key);
    else if (key === 'ip' || key === 'principal' || key === 'credential') identity = identities.builtIn[key];
    else refuse(`policy "${name}": key`, '"ip", "principal", "credential" or a function', key);
    let allowed: AllowedTest | undefined;
    if (p.allow !== undefined) {
      if (!Array.isArray(p.allow) || p.allow.some((e) => typeof e !== 'string' || e === '')) {
        refuse(`policy "${name}": allow`, 'a list of addresses, ranges or identities', p.allow);
      }
      allowed = allowList(p.allow, typeof key === 'function' ? key : identities.raw[key]);
    }
    const mode = p.mode ?? 'enforce';
    if (mode !== 'enforce' && mode !== 'shadow') refuse(`policy "${name}": mode`, '"enforce" or "shadow"', mode);
    const shadow = options.shadow || mode === 'shadow';
    const costOf = (capacity: number): number | CostFunction => {
      const cost = p.cost ?? 1;
      if (typeof cost === 'function') return cost;
      if (!Number.isInteger(cost) || cost < 1 || cost > capacity) {
        refuse(`${label}: cost`, `a positive integer no larger than ${capacity} (the bucket), or a function`, cost);
      }
      return cost;
    };
    /** The compiled policy around its check: capacity is the burst or limit, `w` the header's window. */
    const compiled = (
      algorithm: PolicyOptions['algorithm'],
      check: CompiledPolicy['check'],
      capacity: number,
      windowSeconds: number,
      keyName = name,
    ): CompiledPolicy => ({
      name,
      keyName,
      algorithm,
      check,
      cost: costOf(capacity),
      capacity,
      allowed,
      shadow,
      failMode,
      identity,
      header: { name, quota: capacity, windowSeconds },
    });
    if (p.algorithm === 'token_bucket') {
      const overridden = overrides?.rateLimitRps !== undefined || overrides?.rateLimitBurst !== undefined;
      const t = tierNumbers as { rps?: number; burst?: number } | undefined;
      const base = own as TokenBucketPolicy;
      const rps = positive(t?.rps ?? overrides?.rateLimitRps ?? base.rps, `${label}: rps`, false);
      const burst = positive(t?.burst ?? overrides?.rateLimitBurst ?? base.burst, `${label}: burst`, true);
      const interval = Math.max(1, Math.round(MICROS / rps));
      return compiled(
        'token_bucket',
        (key, cost) => ({ key, cost, algorithm: 'token_bucket', intervalUs: interval, burst }),
        burst,
        Math.max(1, Math.ceil((burst * interval) / MICROS)),
        overridden && overrides ? `${name}@${overrides.surfaceId}` : name,
      );
    }
    if (p.algorithm === 'sliding_window') {
      const limit = positive(p.limit, `${label}: limit`, true);
      const windowSeconds = positive(p.windowSeconds, `${label}: windowSeconds`, false);
      const windowUs = Math.round(windowSeconds * MICROS);
      return compiled(
        'sliding_window',
        (key, cost) => ({ key, cost, algorithm: 'sliding_window', windowUs, limit }),
        limit,
        Math.ceil(windowSeconds),
      );
    }
    if (p.algorithm === 'concurrency') {
      if (options.canRelease === false) invalid('policies', `policy "${name}": a concurrency policy needs a store with release()`);
      const limit = positive(p.limit, `${label}: limit`, true);
      const leaseSeconds = positive(p.leaseSeconds ?? d.leaseSeconds, `${label}: leaseSeconds`, false);
      const leaseUs = Math.round(leaseSeconds * MICROS);
      // Each request's own lease: unique across processes (a random prefix) and requests. `w`:
      // the lease, the longest a slot is held.
      return compiled(
        'concurrency',
        (key, cost) => ({ key, cost, algorithm: 'concurrency', leaseUs, limit, lease: nextLease() }),
        limit,
        Math.ceil(leaseSeconds),
      );
    }
    if (p.algorithm === 'quota') {
      const limit = positive(p.limit, `${label}: limit`, true);
      const periodUs = quotaPeriodUs(name, p.period, p.periodSeconds);
      // The header's window: the period (a month counts as 31 days); its reset says when it renews.
      const windowSeconds = periodUs === 0 ? 31 * 86_400 : periodUs / MICROS;
      return compiled('quota', (key, cost) => ({ key, cost, algorithm: 'quota', periodUs, limit }), limit, windowSeconds);
    }
    return refuse(
      `policy "${name}": algorithm`,
      '"token_bucket", "sliding_window", "quota" or "concurrency"',
      (p as { algorithm?: unknown }).algorithm,
    );
  }

  const compiled = new Map<string, CompiledPolicy>();
  for (const name of Object.keys(options.policies)) {
    if (!POLICY_NAME.test(name)) refuse('policy name', `a match of ${POLICY_NAME}`, name);
    compiled.set(name, compilePolicy(name));
  }
  // Every tier of every policy, compiled now: a tier's mistake throws here too.
  const tiered = new Map<string, CompiledPolicy>();
  for (const name of Object.keys(options.policies)) {
    for (const tier of Object.keys(options.policies[name]?.tiers ?? {}))
      tiered.set(`${name}\0${tier}`, compilePolicy(name, undefined, tier));
  }
  /** The compiled policy (for the tier, when it has one), or, when the surface overrides a token bucket's numbers, its own. */
  function policyFor(name: string, surface: SurfaceOptions | undefined, tier: string | undefined): CompiledPolicy {
    const hasTier = tier !== undefined && options.policies[name]?.tiers?.[tier] !== undefined;
    const p = hasTier ? tiered.get(`${name}\0${tier}`) : compiled.get(name);
    const overrides = surface !== undefined && (surface.rateLimitRps !== undefined || surface.rateLimitBurst !== undefined);
    if (p === undefined || (overrides && p.algorithm === 'token_bucket')) return compilePolicy(name, surface, hasTier ? tier : undefined);
    return p;
  }

  function plan(names: readonly string[], surface: SurfaceOptions | undefined, tier?: string): Plan {
    const option = surface ? 'surfaces' : 'policies';
    if (names.length === 0) invalid(option, `${surface ? `surface "${surface.surfaceId}"` : 'limit()'} names no policy`);
    if (new Set(names).size !== names.length) invalid(option, `policies listed twice: ${names.join(', ')}`);
    if (names.length > 30) invalid(option, 'at most 30 policies per request');
    const policies = names.map((n) => policyFor(n, surface, tier));
    const subplans = new Map<number, Plan>();
    // The tiers these policies name: a request of another tier (or none) is decided by the base plan.
    const tierNames = new Set(names.flatMap((n) => Object.keys(options.policies[n]?.tiers ?? {})));
    const tierPlans = new Map<string, Plan>();
    const enforced = policies.flatMap((p, i) => (p.shadow ? [] : [i]));
    const headerPick = enforced.length === policies.length ? undefined : enforced;
    const headerPolicies = enforced.map((i) => (policies[i] as CompiledPolicy).header);
    const shadowMask = policies.reduce((m, p, i) => (p.shadow ? m | (1 << i) : m), 0);
    const label = names.join('+');
    const children = (outcome: DecisionOutcome) => (observer === undefined ? [] : names.map((n) => observer.decisionCounter(n, outcome)));
    // On the request's span (when tracing runs): the policies and the outcome, never a key.
    const event = (outcome: DecisionOutcome) => ({
      'rate_limit.policies': label,
      'rate_limit.outcome': outcome,
      'rate_limit.store': options.storeName,
    });
    const counter = (outcome: DecisionOutcome) => {
      const counters = children(outcome);
      const attributes = event(outcome);
      return () => {
        for (const c of counters) c();
        recordingSpan()?.addEvent('rate_limit.decision', attributes);
      };
    };
    const limited = children('limited');
    const blockedCounters = children('blocked');
    const byOther = children('denied_by_other');
    const skipEvent = event('skipped');
    const skippedCounters = children('skipped');
    const shadowEvent = event('shadow_limited');
    const shadowCounters = children('shadow_limited');
    const limitedEvent = event('limited');
    return {
      label,
      policies,
      headerPolicies,
      policyHeader: form === false || headerPolicies.length === 0 ? '' : policyHeaderValue(form, headerPolicies),
      headerPick,
      shadowMask,
      failOpen: options.devFailOpen || policies.every((p) => p.failMode === 'open'),
      skippable: policies.some((p) => p.allowed !== undefined),
      holdsLeases: policies.some((p) => p.algorithm === 'concurrency'),
      penalized: names.some((n) => options.policies[n]?.penalty !== undefined),
      cachesDenials: !policies.some((p) => p.algorithm === 'concurrency' || p.overridable === true),
      tier,
      tiered: tier === undefined && tierNames.size > 0,
      forTier(t) {
        if (tier !== undefined || t === undefined || !tierNames.has(t)) return this;
        let sub = tierPlans.get(t);
        if (sub === undefined) {
          sub = plan(names, surface, t);
          tierPlans.set(t, sub);
        }
        return sub;
      },
      without(mask) {
        let sub = subplans.get(mask);
        if (sub === undefined) {
          sub = plan(
            names.filter((_, i) => (mask & (1 << i)) === 0),
            surface,
            tier,
          );
          subplans.set(mask, sub);
        }
        return sub;
      },
      counters: {
        skipped: (mask) => {
          for (let i = 0; i < skippedCounters.length; i++) if ((mask & (1 << i)) !== 0) skippedCounters[i]?.();
          recordingSpan()?.addEvent('rate_limit.decision', skipEvent);
        },
        shadowLimited: (mask) => {
          for (let i = 0; i < shadowCounters.length; i++) if ((mask & (1 << i)) !== 0) shadowCounters[i]?.();
          const span = recordingSpan();
          if (span !== undefined) {
            const wouldDeny = names.filter((_, i) => (mask & (1 << i)) !== 0).join('+');
            span.addEvent('rate_limit.decision', { ...shadowEvent, 'rate_limit.denied_by': wouldDeny });
          }
        },
        allowed: counter('allowed'),
        limited: (remaining, checks, blocked) => {
          for (let i = 0; i < limited.length; i++) {
            ((blocked & (1 << i)) !== 0 ? blockedCounters[i] : denies(remaining, checks, i) ? limited[i] : byOther[i])?.();
          }
          // Which policies denied is spelled out only when a span will carry it: a flood of
          // denials (deny cache hits) costs no string work without tracing, or for an unsampled request.
          const span = recordingSpan();
          if (span !== undefined) {
            const deniedBy = names.filter((_, i) => denies(remaining, checks, i)).join('+');
            span.addEvent('rate_limit.decision', { ...limitedEvent, 'rate_limit.denied_by': deniedBy });
          }
        },
        failedOpen: counter('failed_open'),
        failedClosed: counter('failed_closed'),
      },
    };
  }
  return (names, surface) => plan(names, surface);
}
