import type { Request, Response } from 'express';
import { OptionsError } from '../internal/options';
import { bucketKey } from './key-format';
import type { CompiledPolicy, Plan } from './plan';
import type { Check } from './types';

/**
 * Fills `checks` with the checks of `p`'s policies for one request (its identity, its cost) and
 * returns the deny cache's key for them; a cost function's answer no bucket can hold is an
 * {@link OptionsError} (a bug of the app's, never decided on).
 */
export function fillChecks(prefix: string, p: Plan, req: Request, res: Response, checks: Check[]): string | OptionsError {
  let cacheKey = '';
  for (let i = 0; i < checks.length; i++) {
    const policy = p.policies[i] as CompiledPolicy;
    const key = bucketKey(prefix, policy.keyName, policy.identity(req, res));
    let cost = policy.cost;
    if (typeof cost === 'function') {
      cost = cost(req, res);
      if (!Number.isInteger(cost) || cost < 1 || cost > policy.capacity)
        return new OptionsError('rateLimit', `policy "${policy.name}": cost`, `a positive integer no larger than ${policy.capacity}`, cost);
    }
    checks[i] = policy.check(key, cost);
    // A denial is remembered for one cost: a cheaper request may still fit.
    const entry = typeof policy.cost === 'function' ? `${key}#${cost}` : key;
    cacheKey = i === 0 ? entry : `${cacheKey} ${entry}`;
  }
  // Another tier's numbers may admit what these refused: a denial is remembered per tier.
  return p.tier === undefined ? cacheKey : `${p.tier}|${cacheKey}`;
}
