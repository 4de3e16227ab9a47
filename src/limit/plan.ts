import { trace } from '@opentelemetry/api';
import type { RateLimitMetrics } from '../metrics/metrics';
import { policyHeaderValue, type HeaderForm, type HeaderPolicy } from './headers';
import type { Identities, IdentityOf } from './identity';
import { invalid, positive, RATE_LIMITER_DEFAULTS, type SurfaceOptions } from './options';
import { SLIDING_WINDOW, TOKEN_BUCKET, type FailMode, type PolicyOptions } from './types';

/** A policy name: a lower-case letter, then up to 63 of `[a-z0-9_.-]`. */
export const POLICY_NAME = /^[a-z][a-z0-9_.-]{0,63}$/;
export const MICROS = 1_000_000;

/** A policy ready for requests: its check's numbers, its identity and its header entry. */
export interface CompiledPolicy {
  readonly name: string;
  /** Name inside the key: the policy, or `policy@surface` when a surface overrides its numbers. */
  readonly keyName: string;
  readonly kind: typeof TOKEN_BUCKET | typeof SLIDING_WINDOW;
  readonly a: number;
  readonly b: number;
  readonly failMode: FailMode;
  readonly identity: IdentityOf;
  readonly header: HeaderPolicy;
}

/** The policies one middleware applies, with everything a request needs precomputed. */
export interface Plan {
  readonly label: string;
  readonly policies: readonly CompiledPolicy[];
  readonly headerPolicies: readonly HeaderPolicy[];
  readonly policyHeader: string;
  readonly failOpen: boolean;
  readonly counters: {
    readonly allowed: () => void;
    /** Counts `limited` for the policies that denied, `denied_by_other` for the rest. */
    readonly limited: (remaining: readonly number[]) => void;
    readonly failedOpen: () => void;
    readonly failedClosed: () => void;
  };
}

/** Outcomes counted in `rampart_rate_limit_decisions_total`, per policy of a request. */
export type DecisionOutcome = 'allowed' | 'limited' | 'denied_by_other' | 'failed_open' | 'failed_closed';

/** Whether check `i` of a denied decision is one that denied it (it had less than one request left). */
export const denies = (remaining: readonly number[], i: number) => (remaining[i] as number) < 1;

export interface PlannerOptions {
  readonly policies: Readonly<Record<string, PolicyOptions>>;
  readonly identities: Identities;
  readonly form: HeaderForm;
  readonly devFailOpen: boolean;
  readonly metrics: RateLimitMetrics | undefined;
  /** For span events. */
  readonly storeName: string;
}

/**
 * Compiles every policy once (a mistake throws here) and builds plans from them; a surface
 * that overrides a token bucket's numbers gets a bucket of its own (`policy@surface`).
 */
export function createPlanner(options: PlannerOptions): (names: readonly string[], surface?: SurfaceOptions) => Plan {
  const d = RATE_LIMITER_DEFAULTS;
  const { identities, form, metrics } = options;

  function compilePolicy(name: string, overrides?: SurfaceOptions): CompiledPolicy {
    const p = options.policies[name];
    if (p === undefined) invalid(`unknown policy "${name}"${overrides ? ` in surface "${overrides.surface_id}"` : ''}`);
    const failMode = p.failMode ?? d.failMode;
    if (failMode !== 'open' && failMode !== 'closed') invalid(`policy "${name}": failMode must be "open" or "closed"`);
    const key = p.key ?? d.key;
    let identity: IdentityOf;
    if (typeof key === 'function') identity = identities.custom(key);
    else if (key === 'ip' || key === 'principal' || key === 'credential') identity = identities.builtIn[key];
    else invalid(`policy "${name}": key must be "ip", "principal", "credential" or a function`);
    if (p.algorithm === 'token_bucket') {
      const overridden = overrides?.rate_limit_rps !== undefined || overrides?.rate_limit_burst !== undefined;
      const rps = positive(overrides?.rate_limit_rps ?? p.rps, `policy "${name}": rps`, false);
      const burst = positive(overrides?.rate_limit_burst ?? p.burst, `policy "${name}": burst`, true);
      const interval = Math.max(1, Math.round(MICROS / rps));
      return {
        name,
        keyName: overridden && overrides ? `${name}@${overrides.surface_id}` : name,
        kind: TOKEN_BUCKET,
        a: interval,
        b: burst,
        failMode,
        identity,
        header: { name, quota: burst, windowSeconds: Math.max(1, Math.ceil((burst * interval) / MICROS)) },
      };
    }
    if (p.algorithm === 'sliding_window') {
      const limit = positive(p.limit, `policy "${name}": limit`, true);
      const windowSeconds = positive(p.windowSeconds, `policy "${name}": windowSeconds`, false);
      return {
        name,
        keyName: name,
        kind: SLIDING_WINDOW,
        a: Math.round(windowSeconds * MICROS),
        b: limit,
        failMode,
        identity,
        header: { name, quota: limit, windowSeconds: Math.ceil(windowSeconds) },
      };
    }
    return invalid(`policy "${name}": algorithm must be "token_bucket" or "sliding_window"`);
  }

  const compiled = new Map<string, CompiledPolicy>();
  for (const name of Object.keys(options.policies)) {
    if (!POLICY_NAME.test(name)) invalid(`policy name "${name}" must match ${POLICY_NAME}`);
    compiled.set(name, compilePolicy(name));
  }
  /** The compiled policy, or, when the surface overrides a token bucket's numbers, its own. */
  function policyFor(name: string, surface: SurfaceOptions | undefined): CompiledPolicy {
    const p = compiled.get(name);
    const overrides = surface !== undefined && (surface.rate_limit_rps !== undefined || surface.rate_limit_burst !== undefined);
    if (p === undefined || (overrides && p.kind === TOKEN_BUCKET)) return compilePolicy(name, surface);
    return p;
  }

  return (names, surface) => {
    if (names.length === 0) invalid(`${surface ? `surface "${surface.surface_id}"` : 'limit()'} names no policy`);
    if (new Set(names).size !== names.length) invalid(`policies listed twice: ${names.join(', ')}`);
    const policies = names.map((n) => policyFor(n, surface));
    const headerPolicies = policies.map((p) => p.header);
    const label = names.join('+');
    const children = (outcome: DecisionOutcome) => (metrics === undefined ? [] : names.map((n) => metrics.decisions.labels(n, outcome)));
    // On the request's span (when tracing runs): the policies and the outcome, never a key.
    const event = (outcome: DecisionOutcome) => ({ 'rate_limit.policies': label, 'rate_limit.outcome': outcome, 'rate_limit.store': options.storeName });
    const counter = (outcome: DecisionOutcome) => {
      const counters = children(outcome);
      const attributes = event(outcome);
      return () => {
        for (const c of counters) c.inc();
        trace.getActiveSpan()?.addEvent('rate_limit.decision', attributes);
      };
    };
    const limited = children('limited');
    const byOther = children('denied_by_other');
    const limitedEvent = event('limited');
    return {
      label,
      policies,
      headerPolicies,
      policyHeader: form === false ? '' : policyHeaderValue(form, headerPolicies),
      failOpen: options.devFailOpen || policies.every((p) => p.failMode === 'open'),
      counters: {
        allowed: counter('allowed'),
        limited: (remaining) => {
          for (let i = 0; i < limited.length; i++) (denies(remaining, i) ? limited[i] : byOther[i])?.inc();
          // Which policies denied is spelled out only when a span will carry it: a flood of
          // denials (deny cache hits) costs no string work without tracing.
          const span = trace.getActiveSpan();
          if (span !== undefined) {
            const deniedBy = names.filter((_, i) => denies(remaining, i)).join('+');
            span.addEvent('rate_limit.decision', { ...limitedEvent, 'rate_limit.denied_by': deniedBy });
          }
        },
        failedOpen: counter('failed_open'),
        failedClosed: counter('failed_closed'),
      },
    };
  };
}
