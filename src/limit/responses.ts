import type { Response } from 'express';
import { sendError } from '../errors';
import type { HeaderWriter } from './headers';
import { MICROS } from './algorithms';
import { denies, type CompiledPolicy, type Plan } from './plan';
import type { Check } from './types';

/** What the limiter writes on a response: the RateLimit headers, and the 429. */
export function createResponder(writeHeaders: HeaderWriter | undefined) {
  /** The RateLimit headers of the plan's enforced policies; `reserved`: an admission's checks, when some policy settles later. */
  function headers(res: Response, p: Plan, remaining: readonly number[], resetUs: readonly number[], reserved?: readonly Check[]): void {
    if (writeHeaders === undefined || p.headerPolicies.length === 0) return;
    const pick = p.headerPick;
    const costs = reserved?.map((c) => c.cost);
    if (pick === undefined) writeHeaders(res, p.policyHeader, p.headerPolicies, remaining, resetUs, costs);
    else
      writeHeaders(
        res,
        p.policyHeader,
        p.headerPolicies,
        pick.map((i) => remaining[i] as number),
        pick.map((i) => resetUs[i] as number),
        costs === undefined ? undefined : pick.map((i) => costs[i] as number),
      );
  }

  /** Counts a denial (unless `count` is false: counted already) and answers 429 `RATE_LIMITED`, naming the policy that refused. */
  function deny(
    res: Response,
    p: Plan,
    checks: readonly Check[],
    remaining: readonly number[],
    resetUs: readonly number[],
    retryUs: number,
    blocked: number,
    count = true,
  ): void {
    if (count) p.counters.limited(remaining, checks, blocked);
    headers(res, p, remaining, resetUs);
    // The policy that refused: one whose penalty blocks first, else the first that denied.
    let at = -1;
    for (let i = 0; i < p.policies.length && at === -1; i++) if ((blocked & (1 << i)) !== 0) at = i;
    for (let i = 0; i < p.policies.length && at === -1; i++) if (denies(remaining, checks, i)) at = i;
    const culprit = p.policies[Math.max(0, at)] as CompiledPolicy;
    if (blocked !== 0 && (blocked & (1 << at)) !== 0)
      sendError(res, 'RATE_LIMITED', `Blocked after repeated refusals (policy "${culprit.name}")`, {
        retryAfterSeconds: retryUs / MICROS,
        extra: { policy: culprit.name, blocked: true },
      });
    else
      sendError(res, 'RATE_LIMITED', `Rate limit exceeded (policy "${culprit.name}")`, {
        retryAfterSeconds: retryUs / MICROS,
        extra: { policy: culprit.name },
      });
  }

  return { headers, deny };
}

/**
 * Runs `done` once when the response has been sent or its connection closed, whichever comes
 * first (at once when the client is already gone): an admitted request's concurrency leases are
 * given back, and its reservations settled, then. A failed release (the store down) leaves the
 * lease to end on its own.
 */
export function whenResponseEnds(res: Response, done: () => void): void {
  let pending = true;
  const end = () => {
    if (!pending) return;
    pending = false;
    res.off('finish', end);
    res.off('close', end);
    done();
  };
  res.once('finish', end);
  res.once('close', end);
  // The client went away while the decision was being made: its 'close' has been and gone.
  if (res.closed) end();
}
