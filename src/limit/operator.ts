import { OptionsError } from '../internal/options';
import { capacityOf } from './algorithms';
import type { Identities } from './identity';
import { bucketKey } from './key-format';
import type { CompiledPolicy, Plan } from './plan';
import type { RateLimitStore } from './store';
import type { ConsumeIdentity, Peeked } from './types';

export interface OperatorDeps {
  readonly prefix: string;
  readonly identities: Identities;
  readonly store: RateLimitStore;
  readonly planOf: (names: readonly string[]) => Plan;
  /** Forgets the in-process refusals (a reset or unblock must be seen at once here). */
  readonly forget: () => void;
}

/**
 * The operator's controls ({@link RateLimiter.peek}, `reset`, `block`, `unblock`): on the bucket
 * of an identity given as the app knows it, hashed as the middleware hashes a request's.
 */
export function createOperatorControls(d: OperatorDeps) {
  function target(op: string, policy: string, identity: ConsumeIdentity): { p: CompiledPolicy; key: string; penalized: boolean } {
    if (typeof policy !== 'string') throw new OptionsError(op, 'policy', 'a policy name', policy);
    const plan = d.planOf([policy]);
    const p = plan.policies[0] as CompiledPolicy;
    const value = typeof identity === 'string' ? identity : identity[p.keyKind];
    if (typeof value !== 'string' || value === '')
      throw new OptionsError(op, 'identity', `a non-empty string (or an object with a non-empty "${p.keyKind}")`, value);
    return { p, key: bucketKey(d.prefix, p.keyName, d.identities.encode(p.keyKind, value)), penalized: plan.penalized };
  }
  const needs = (op: string, method: keyof RateLimitStore) => {
    if (typeof d.store[method] !== 'function')
      throw new OptionsError(op, 'store', `a store with ${String(method)}() (the Redis and memory stores have it)`, d.store.name);
  };

  return {
    async peek(policy: string, identity: ConsumeIdentity): Promise<Peeked> {
      needs('peek', 'peek');
      const { p, key } = target('peek', policy, identity);
      const check = p.check(key, typeof p.cost === 'number' ? p.cost : 1);
      const seen = await (d.store.peek as NonNullable<RateLimitStore['peek']>)([check]);
      return {
        policy,
        key,
        limit: capacityOf(check),
        remaining: Math.max(0, seen.remaining[0] ?? 0),
        resetMs: Math.max(0, Math.ceil((seen.resetUs[0] ?? 0) / 1000)),
        allowed: seen.allowed,
        retryAfterMs: seen.allowed ? 0 : Math.max(1, Math.ceil(seen.retryAfterUs / 1000)),
        blocked: (seen.blocked ?? 0) !== 0,
      };
    },
    async reset(policy: string, identity: ConsumeIdentity): Promise<string> {
      needs('reset', 'reset');
      const { key } = target('reset', policy, identity);
      await (d.store.reset as NonNullable<RateLimitStore['reset']>)(key);
      d.forget();
      return key;
    },
    async block(policy: string, identity: ConsumeIdentity, seconds: number): Promise<string> {
      needs('block', 'block');
      if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0)
        throw new OptionsError('block', 'seconds', 'a positive number', seconds);
      const { key, penalized } = target('block', policy, identity);
      if (!penalized)
        throw new OptionsError(
          'block',
          `policy "${policy}"`,
          'a policy with a penalty (a block is its state: add penalty: { denials, withinSeconds, blockSeconds })',
          'none',
        );
      await (d.store.block as NonNullable<RateLimitStore['block']>)(key, seconds * 1000);
      return key;
    },
    async unblock(policy: string, identity: ConsumeIdentity): Promise<string> {
      needs('unblock', 'block');
      const { key } = target('unblock', policy, identity);
      await (d.store.block as NonNullable<RateLimitStore['block']>)(key, 0);
      d.forget();
      return key;
    },
  };
}
