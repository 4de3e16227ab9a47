import type { Identities } from './identity';
import { bucketKey } from './key-format';
import { invalid } from './options';
import { capacityOf, timeOf } from './algorithms';
import type { Check, PolicyOptions, TierNumbers } from './types';
import type { RateLimitStore } from './store';

export interface OverridesOptions {
  readonly prefix: string;
  readonly store: RateLimitStore;
  readonly identities: Identities;
  /** The policies in force now (setPolicies swaps them). */
  readonly policies: () => Readonly<Record<string, PolicyOptions>>;
  /** The check policy `name` makes with `p`'s numbers, compiled as any policy is (a mistake throws). */
  readonly checkOf: (name: string, p: PolicyOptions, numbers: TierNumbers, key: string) => Check;
}

/** {@link RateLimiter.setOverride} and {@link RateLimiter.clearOverride}: an identity's own numbers, kept in the store. */
export function createOverrides(o: OverridesOptions) {
  /** The key of `identity` (as the app gives it) for an overridable policy. */
  function target(policy: string, identity: string): { key: string; p: PolicyOptions } {
    const p = o.policies()[policy];
    if (p === undefined) invalid('setOverride', `unknown policy "${policy}"`);
    if (p.overrides !== true) invalid('setOverride', `policy "${policy}" does not take overrides (set overrides: true)`);
    if (typeof identity !== 'string' || identity === '') invalid('setOverride', 'the identity must be a non-empty string');
    const kind = typeof p.key === 'function' ? 'custom' : (p.key ?? 'ip');
    return { key: bucketKey(o.prefix, policy, o.identities.encode(kind, identity)), p };
  }

  return {
    async setOverride(policy: string, identity: string, numbers: TierNumbers, ttlSeconds?: number): Promise<void> {
      const { key, p } = target(policy, identity);
      // Compiled as the policy itself is: the store keeps the check's time and capacity.
      const own = o.checkOf(policy, p, numbers, key);
      if (ttlSeconds !== undefined && (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0))
        invalid('setOverride', `ttlSeconds must be a positive number (got ${String(ttlSeconds)})`);
      await o.store.setOverride?.(
        key,
        { timeUs: timeOf(own), capacity: capacityOf(own) },
        ttlSeconds === undefined ? undefined : ttlSeconds * 1000,
      );
    },
    async clearOverride(policy: string, identity: string): Promise<void> {
      await o.store.clearOverride?.(target(policy, identity).key);
    },
  };
}
