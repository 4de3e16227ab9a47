import type { Request, Response } from 'express';
import type { CompiledPolicy, Plan } from './plan';
import { admittedAt, type Decision, type RateLimitStore } from './store';
import type { Check } from './types';

/**
 * Reserve, then settle, when an admitted request's response has ended (sent, or its client gone:
 * see whenResponseEnds): each `settle` policy of the plan has its reservation settled to the
 * request's real cost, the difference refunded or charged in one store call per policy. A real
 * cost that is not a whole number of 0 or more, a settle function that throws, or a store that
 * fails keeps the reservation as it was, and `onError` hears why, with the policy's name
 * (`fromStore` when the store failed); so does a process that dies first.
 */
export function settle(
  store: Pick<RateLimitStore, 'adjust'>,
  plan: Plan,
  checks: readonly (Check | undefined)[],
  decision: Decision,
  req: Request,
  res: Response,
  onError: (err: unknown, policy: string, fromStore: boolean) => void,
): void {
  for (let i = 0; i < checks.length; i++) {
    if ((plan.settles & (1 << i)) === 0) continue;
    const policy = plan.policies[i] as CompiledPolicy;
    const check = checks[i];
    // Left out of a local decision (its policy fails open): nothing was reserved.
    if (check === undefined) continue;
    let real: number;
    try {
      real = (policy.settle as NonNullable<CompiledPolicy['settle']>)(req, res, check.cost);
    } catch (err) {
      onError(err, policy.name, false);
      continue;
    }
    if (!Number.isSafeInteger(real) || real < 0) {
      const problem = `settle gave ${typeof real === 'string' ? JSON.stringify(real) : String(real)}, not a whole number of 0 or more; the reservation of ${check.cost} stands`;
      onError(new TypeError(`policy "${policy.name}": ${problem}`), policy.name, false);
      continue;
    }
    if (real !== check.cost)
      store.adjust?.(check, real - check.cost, admittedAt(decision, i)).catch((err: unknown) => onError(err, policy.name, true));
  }
}
