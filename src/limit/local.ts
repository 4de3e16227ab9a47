import { randomBytes } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { capacityOf, timeOf, withNumbers } from './algorithms';
import { fleetKey } from './key-format';
import { createMemoryStore } from './memory-store';
import type { CompiledPolicy, Plan } from './plan';
import type { Decision, RateLimitStore } from './store';
import type { Check } from './types';
import { whenResponseEnds, type createResponder } from './responses';
import { settle } from './settle';

/** Options of {@link createLocalFallback}: the limiter's `fleet` option and what it needs. */
export interface LocalFallbackOptions {
  /** The store whose outage the fallback covers (its `fleet` heartbeat, when it has one). */
  readonly store: RateLimitStore;
  readonly prefix: string;
  /** The fleet's size when given: no heartbeat. */
  readonly size: number | undefined;
  /** How often this instance beats (ms); an instance is counted for 3 beats. */
  readonly heartbeatMs: number;
}

/** A decision made in process while the store is down, and the checks it decided (to release and settle them there). */
export interface LocalDecision {
  readonly decision: Decision;
  /** The checks decided, scaled to this instance's share; `undefined` where the policy fails open (left out). */
  readonly checks: readonly (Check | undefined)[];
}

/**
 * `failMode: 'local'`: while the store is unavailable, such a policy keeps deciding in process,
 * with this instance's share of its numbers (a token bucket's `rps` and `burst`, a window's,
 * quota's or concurrency limit's `limit`, divided by the fleet's size, never below the
 * request's cost), on a memory store of its own. The fleet's size is `size` when given, else
 * learned from the store while it answers: each instance beats every `heartbeatMs`
 * (`RateLimitStore.fleet`), and counts the instances that beat within the last three. Until
 * the first answer, and with a store that cannot say, the fleet is 1. The local buckets keep
 * their state between outages (they refill, and windows and periods end, as in the store): a
 * second outage within a window goes on from the first, never from a fresh bucket.
 */
export function createLocalFallback(o: LocalFallbackOptions) {
  const local = createMemoryStore();
  let size = o.size ?? 1;
  let timer: NodeJS.Timeout | undefined;
  const member = `${process.pid}.${randomBytes(6).toString('hex')}`;
  const key = fleetKey(o.prefix);
  const beat = () => {
    o.store.fleet?.(key, member, 3 * o.heartbeatMs).then(
      (n) => {
        if (Number.isSafeInteger(n) && n >= 1) size = n;
      },
      () => undefined,
    );
  };

  /** `c` with its numbers divided by the fleet's size (its cost always fits). */
  function share(c: Check): Check {
    if (size <= 1) return c;
    const capacity = Math.max(c.cost, Math.floor(capacityOf(c) / size));
    // A token bucket's rate shrinks too: one token every `size` intervals.
    return withNumbers(c, c.algorithm === 'token_bucket' ? timeOf(c) * size : timeOf(c), capacity);
  }

  return {
    /** The fleet's size in force. */
    get size(): number {
      return size;
    },
    /** Starts the heartbeat (when the size is not given and the store can beat); idempotent. */
    start(): void {
      if (timer !== undefined || o.size !== undefined || o.store.fleet === undefined) return;
      beat();
      timer = setInterval(beat, o.heartbeatMs);
      timer.unref();
    },
    /** Decides the local policies of `p` for `checks` in process; the open ones are left out. */
    async decide(p: Plan, checks: readonly Check[]): Promise<LocalDecision> {
      const picked: (Check | undefined)[] = checks.map((c, i) =>
        (p.policies[i] as CompiledPolicy).failMode === 'local' ? share(c) : undefined,
      );
      const decided = picked.filter((c): c is Check => c !== undefined);
      const d = await local.decide(decided);
      // Back in the plan's order: a left-out policy shows as full.
      const remaining: number[] = [];
      const resetUs: number[] = [];
      let blocked = 0;
      let j = 0;
      picked.forEach((c, i) => {
        if (c === undefined) {
          remaining.push(capacityOf(checks[i] as Check));
          resetUs.push(0);
          return;
        }
        if (((d.blocked ?? 0) & (1 << j)) !== 0) blocked |= 1 << i;
        remaining.push(d.remaining[j] as number);
        resetUs.push(d.resetUs[j] as number);
        j++;
      });
      const decision = {
        allowed: d.allowed,
        retryAfterUs: d.retryAfterUs,
        remaining,
        resetUs,
        ...(d.atUs === undefined ? {} : { atUs: d.atUs }),
      };
      return { decision: blocked === 0 ? decision : { ...decision, blocked }, checks: picked };
    },
    /** The in-process store (releases and settles of local admissions go there). */
    get store(): RateLimitStore {
      return local;
    },
    close(): void {
      if (timer !== undefined) clearInterval(timer);
      void local.close();
    },
  };
}

export type LocalFallback = ReturnType<typeof createLocalFallback>;

/** What {@link createLocalAnswer} needs of the limiter. */
export interface LocalAnswerOptions {
  readonly fallback: LocalFallback;
  readonly responder: ReturnType<typeof createResponder>;
  /** A settle that failed or was refused (the limiter's `onSettleError`). */
  readonly settleFailed: (err: unknown, policy: string, fromStore: boolean) => void;
  /** The usual answer to a failure, when even the local decision fails (it does not: a memory store). */
  readonly otherwise: (err: unknown, p: Plan, res: Response, next: NextFunction) => void;
}

/**
 * The middleware's answer while the store is down, for a plan with {@link Plan.failLocal}: the
 * local decision, counted `local_allowed` / `local_limited`, with the headers of this instance's
 * share, a 429 as usual, and the leases and settles of an admission kept in process.
 */
export function createLocalAnswer(o: LocalAnswerOptions) {
  const { fallback, responder } = o;
  return (p: Plan, checks: readonly Check[], req: Request, res: Response, next: NextFunction): void => {
    fallback.decide(p, checks).then(
      ({ decision, checks: decided }) => {
        p.counters.local(decision.allowed);
        if (!decision.allowed) {
          responder.deny(res, p, checks, decision.remaining, decision.resetUs, decision.retryAfterUs, decision.blocked ?? 0, false);
          return;
        }
        responder.headers(res, p, decision.remaining, decision.resetUs, p.settles === 0 ? undefined : checks);
        const store = fallback.store;
        if (p.holdsLeases) whenResponseEnds(res, () => void store.release?.(decided.filter((c): c is Check => c !== undefined)));
        if (p.settles !== 0) whenResponseEnds(res, () => settle(store, p, decided, decision, req, res, o.settleFailed));
        next();
      },
      (err: unknown) => o.otherwise(err, p, res, next),
    );
  };
}
