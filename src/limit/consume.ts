import { performance } from 'node:perf_hooks';
import { OptionsError } from '../internal/options';
import { capacityOf } from './algorithms';
import { isStoreMisuse } from './breakers';
import type { DenyCache } from './deny-cache';
import type { Identities } from './identity';
import { bucketKey } from './key-format';
import { denies, type CompiledPolicy, type Plan } from './plan';
import type { LocalFallback } from './local';
import type { Decision, RateLimitStore } from './store';
import type { Check, ConsumeIdentity, ConsumeOptions, Consumed, ConsumedPolicy, DecidedBy, KeyKind } from './types';

export interface ConsumeDeps {
  readonly prefix: string;
  readonly identities: Identities;
  readonly store: RateLimitStore;
  readonly planOf: (names: readonly string[]) => Plan;
  readonly decide: (checks: Check[]) => Promise<Decision>;
  readonly denied: DenyCache;
  readonly generation: () => number;
  readonly latency: ((seconds: number) => void) | undefined;
  readonly failure: { report(err: unknown): Error; detail(err: Error): string };
  readonly onReleaseError: (err: unknown) => void;
  /** Decisions in process while the store is down (`failMode: 'local'`). */
  readonly local: LocalFallback;
}

const nowMicros = () => (performance.timeOrigin + performance.now()) * 1000;
const noLeases = () => Promise.resolve();

/** The value of `identity` for a policy of `kind`. */
function valueFor(identity: ConsumeIdentity, kind: KeyKind | 'custom', policy: string): string {
  const v = typeof identity === 'string' ? identity : identity[kind];
  if (typeof v !== 'string' || v === '')
    throw new OptionsError('consume', 'identity', `a non-empty string, or an object with a non-empty "${kind}" for policy "${policy}"`, v);
  return v;
}

/**
 * {@link RateLimiter.consume}: the middleware's decision without a request. The same plan (one
 * atomic decision for every policy given), deny cache, deadline, breakers, fail modes, counters
 * and span events; the identity comes from the caller instead of a request.
 */
export function createConsume(d: ConsumeDeps) {
  function checksOf(p: Plan, identity: ConsumeIdentity, cost: number | undefined): { checks: Check[]; cacheKey: string } {
    const checks: Check[] = [];
    let cacheKey = '';
    for (const policy of p.policies as readonly CompiledPolicy[]) {
      const kind = policy.keyKind;
      const key = bucketKey(d.prefix, policy.keyName, d.identities.encode(kind, valueFor(identity, kind, policy.name)));
      const c = cost ?? (typeof policy.cost === 'number' ? policy.cost : 1);
      if (!Number.isInteger(c) || c < 1 || c > policy.capacity)
        throw new OptionsError('consume', `cost for policy "${policy.name}"`, `a positive integer no larger than ${policy.capacity}`, c);
      checks.push(policy.check(key, c));
      const entry = cost === undefined && typeof policy.cost !== 'function' ? key : `${key}#${c}`;
      cacheKey = cacheKey === '' ? entry : `${cacheKey} ${entry}`;
    }
    return { checks, cacheKey: p.tier === undefined ? cacheKey : `${p.tier}|${cacheKey}` };
  }

  /** The decision as plain data: the enforced policies only. */
  function result(
    p: Plan,
    checks: readonly Check[],
    allowed: boolean,
    remaining: readonly number[],
    resetUs: readonly number[],
    retryAfterUs: number,
    decidedBy: DecidedBy,
    blocked: boolean,
  ): Consumed {
    const policies: ConsumedPolicy[] = [];
    for (let i = 0; i < checks.length; i++) {
      if ((p.shadowMask & (1 << i)) !== 0) continue;
      const check = checks[i] as Check;
      policies.push({
        name: (p.policies[i] as CompiledPolicy).name,
        limit: capacityOf(check),
        remaining: Math.max(0, remaining[i] ?? 0),
        resetMs: Math.max(0, Math.ceil((resetUs[i] ?? 0) / 1000)),
      });
    }
    const release =
      allowed && decidedBy === 'store' && p.holdsLeases
        ? () => d.store.release?.(checks).catch(d.onReleaseError) ?? Promise.resolve()
        : noLeases;
    return {
      allowed,
      retryAfterMs: allowed ? 0 : Math.max(1, Math.ceil(retryAfterUs / 1000)),
      policies,
      decidedBy,
      blocked,
      release: release as () => Promise<void>,
    };
  }

  async function decidePlan(p: Plan, identity: ConsumeIdentity, cost: number | undefined): Promise<Consumed> {
    const { checks, cacheKey } = checksOf(p, identity, cost);
    const now = nowMicros();
    if (d.denied.enabled && p.cachesDenials) {
      const hit = d.denied.get(cacheKey, now);
      if (hit !== undefined) {
        const elapsed = now - hit.atUs;
        p.counters.limited(hit.remaining, checks, hit.blocked);
        const resets = hit.resetUs.map((r) => r - elapsed);
        return result(p, checks, false, hit.remaining, resets, hit.untilUs - now, 'deny_cache', hit.blocked !== 0);
      }
    }
    const started = d.latency === undefined ? 0 : performance.now();
    const gen = d.generation();
    let decision: Decision;
    try {
      decision = await d.decide(checks);
    } catch (err) {
      d.latency?.((performance.now() - started) / 1000);
      if (isStoreMisuse(err)) throw new Error(`rate limiter: the store was called wrongly (${(err as Error).message})`, { cause: err });
      const e = d.failure.report(err);
      const empty = checks.map(() => 0);
      if (p.failLocal) {
        const { decision: ld, checks: decided } = await d.local.decide(p, checks);
        p.counters.local(ld.allowed);
        const r = result(p, checks, ld.allowed, ld.remaining, ld.resetUs, ld.retryAfterUs, 'local', (ld.blocked ?? 0) !== 0);
        const store = d.local.store;
        const held = decided.filter((c): c is Check => c !== undefined);
        const release = ld.allowed && p.holdsLeases ? () => store.release?.(held) ?? Promise.resolve() : noLeases;
        return { ...r, release: release as () => Promise<void>, failure: d.failure.detail(e) };
      }
      if (p.failOpen) {
        p.counters.failedOpen();
        return { ...result(p, checks, true, empty, empty, 0, 'fail_open', false), failure: d.failure.detail(e) };
      }
      p.counters.failedClosed();
      return { ...result(p, checks, false, empty, empty, 1_000_000, 'fail_closed', false), failure: d.failure.detail(e) };
    }
    d.latency?.((performance.now() - started) / 1000);
    if (decision.allowed) {
      p.counters.allowed();
      return result(p, checks, true, decision.remaining, decision.resetUs, 0, 'store', false);
    }
    if (p.shadowMask !== 0) {
      let denying = 0;
      for (let i = 0; i < checks.length; i++) if (denies(decision.remaining, checks, i)) denying |= 1 << i;
      if ((denying & ~p.shadowMask) === 0) {
        // Only shadow policies would refuse: allowed, and the enforced ones decide on their own.
        p.counters.shadowLimited(denying);
        if (p.shadowMask === 2 ** checks.length - 1)
          return result(p, checks, true, decision.remaining, decision.resetUs, 0, 'store', false);
        return decidePlan(p.without(p.shadowMask), identity, cost);
      }
    }
    const blocked = decision.blocked ?? 0;
    if (gen === d.generation() && p.cachesDenials && !p.penalized)
      d.denied.remember(cacheKey, {
        untilUs: now + decision.retryAfterUs,
        atUs: now,
        remaining: decision.remaining,
        resetUs: decision.resetUs,
        blocked,
      });
    p.counters.limited(decision.remaining, checks, blocked);
    return result(p, checks, false, decision.remaining, decision.resetUs, decision.retryAfterUs, 'store', blocked !== 0);
  }

  return function consume(
    policies: string | readonly string[],
    identity: ConsumeIdentity,
    options: ConsumeOptions = {},
  ): Promise<Consumed> {
    try {
      const names = typeof policies === 'string' ? [policies] : [...policies];
      if (names.length === 0) throw new OptionsError('consume', 'policies', 'at least one policy name', names);
      if (options.cost !== undefined && (!Number.isInteger(options.cost) || options.cost < 1))
        throw new OptionsError('consume', 'cost', 'a positive integer', options.cost);
      const plan = d.planOf(names).forTier(options.tier);
      return decidePlan(plan, identity, options.cost);
    } catch (err) {
      return Promise.reject(err);
    }
  };
}
