import { recordingSpan } from '../internal/recording-span';
import { createCompiler, POLICY_NAME, type CompiledPolicy } from './compile';
import { policyHeaderValue, type HeaderForm, type HeaderPolicy } from './headers';
import type { Identities } from './identity';
import type { DecisionOutcome, RateLimitObserver } from './observer';
import { invalid, refuse, type SurfaceOptions } from './options';
import type { Check, PolicyOptions } from './types';

export type { CompiledPolicy } from './compile';

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
  /**
   * While the store fails, the plan keeps deciding in process: some policy is `failMode: 'local'`
   * and none is `closed` (the `open` ones are left out of the local decision).
   */
  readonly failLocal: boolean;
  /** Some policy has an allow list: requests may skip policies (see {@link Plan.without}). */
  readonly skippable: boolean;
  /** Some policy is a concurrency limit: an admitted request holds leases until it is over. */
  readonly holdsLeases: boolean;
  /** Bit i: policy i settles its cost when the response ends (`settle`). */
  readonly settles: number;
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
    /** Counts `local_allowed`, or `local_limited` (every policy of the plan), for a decision made in process. */
    readonly local: (allowed: boolean) => void;
  };
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
  /** `false`: the store cannot settle (no `adjust`), so `settle` is refused. */
  readonly canAdjust?: boolean;
}

/**
 * Compiles every policy once (compile.ts; a mistake throws here) and builds plans from them; a
 * surface that overrides a token bucket's numbers gets a bucket of its own (`policy@surface`).
 */
export function createPlanner(options: PlannerOptions): (names: readonly string[], surface?: SurfaceOptions) => Plan {
  const { form, observer } = options;
  const compilePolicy = createCompiler(options);

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
    /** The local outcomes' counters, made only for plans that decide locally (no idle series otherwise). */
    const localCounters = () => {
      if (!policies.some((p) => p.failMode === 'local')) return () => undefined;
      const allowed = counter('local_allowed');
      const refused = counter('local_limited');
      return (ok: boolean) => (ok ? allowed() : refused());
    };
    return {
      label,
      policies,
      headerPolicies,
      policyHeader: form === false || headerPolicies.length === 0 ? '' : policyHeaderValue(form, headerPolicies),
      headerPick,
      shadowMask,
      failOpen: options.devFailOpen || policies.every((p) => p.failMode === 'open'),
      failLocal: !options.devFailOpen && policies.some((p) => p.failMode === 'local') && !policies.some((p) => p.failMode === 'closed'),
      skippable: policies.some((p) => p.allowed !== undefined),
      holdsLeases: policies.some((p) => p.algorithm === 'concurrency'),
      settles: policies.reduce((m, p, i) => (p.settle === undefined ? m : m | (1 << i)), 0),
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
        local: localCounters(),
      },
    };
  }
  return (names, surface) => plan(names, surface);
}
