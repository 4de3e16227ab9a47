import calculateSlot from 'cluster-key-slot';
import { positiveInteger } from '../../internal/options';
import { overrideKey, penaltyKey } from '../key-format';
import type { Check } from '../types';
import type { Decision, DecideOptions, OverrideNumbers, RateLimitStore } from '../store';
import { decideAcrossSlots, giveBack, keyOf, type SlotSteps, type TimedDecision } from './across-slots';
import { createTurnBatcher } from './batcher';
import { scriptCalls } from './calls';
import { clientEvents } from './client-events';
import { connectionOf, type RedisStoreClient } from './connection-of';
import { createReleaseBatcher } from './releases';
import { BLOCKED, encodeOverride } from './wire';

/** Options of {@link createRedisStore}. */
export interface RedisStoreOptions {
  /**
   * The client: ioredis 6 or 5 or iovalkey (standalone, Sentinel or Cluster), or node-redis 5 or
   * 6 (`createClient()` or `createCluster()`). The store does not close it.
   */
  readonly client: RedisStoreClient;
  /**
   * Most decisions sent in one script call. The decisions made in one event-loop turn are
   * coalesced into one `EVALSHA` (per hash slot on Cluster); `1` sends one call per decision.
   */
  readonly maxBatch?: number;
}

/** Defaults of {@link createRedisStore}. */
export const REDIS_STORE_DEFAULTS = Object.freeze({ maxBatch: 128 });

/** Whether a decision's caller has stopped waiting (`abandoned` when given: it makes no AbortSignal). */
const gaveUp = (o: DecideOptions): boolean => (o.abandoned !== undefined ? o.abandoned() : o.signal?.aborted === true);

/**
 * The Redis store: every decision is one pass of one Lua script, with the clock from Redis
 * `TIME`. The decisions of one event-loop turn share a call (batcher.ts), so a busy process pays
 * one round trip and one script start for many requests; a call failing fails each of its
 * decisions. On Cluster a decision whose keys share a slot (one identity, any number of
 * policies) is still one call; one over several slots is decided slot by slot (across-slots.ts).
 * The parts: connection.ts (what the store needs of a client, for ioredis and node-redis),
 * wire.ts (the scripts' arguments and replies), scripts.ts, calls.ts (the script calls, a
 * failure said by its cause), batcher.ts, releases.ts, across-slots.ts,
 * cluster-watch.ts, client-events.ts; here, the wiring and the deadline's give-back.
 */
export function createRedisStore(options: RedisStoreOptions): RateLimitStore {
  const maxBatch = options.maxBatch ?? REDIS_STORE_DEFAULTS.maxBatch;
  positiveInteger('redisStore', 'maxBatch', maxBatch);
  const connection = connectionOf(options.client);
  const slotOfKey = connection.cluster === undefined ? undefined : calculateSlot;
  const calls = scriptCalls(connection);
  const events = clientEvents(connection);
  const push = createTurnBatcher({
    maxBatch,
    slotOf: slotOfKey === undefined ? undefined : (checks) => slotOfKey(keyOf(checks)),
    send: calls.decide,
  });
  const release = createReleaseBatcher({ maxBatch, slotOf: slotOfKey, send: calls.release });

  /** A step of a decision across slots (or a give-back), through `guard`. */
  const stepsWith = (guard: SlotSteps['guard']): SlotSteps => ({
    decide: (checks) =>
      new Promise<TimedDecision>((resolve, reject) => push({ checks, resolve: (decision, atUs) => resolve({ decision, atUs }), reject })),
    settle: calls.settle,
    guard,
  });
  const direct = stepsWith((_key, call) => call());

  return {
    name: 'redis',
    ...(events.partition === undefined ? {} : { partition: events.partition, onTopology: events.onTopology }),
    onRecover: events.onRecover,
    decide(checks: readonly Check[], decideOptions?: DecideOptions): Promise<Decision> {
      if (checks.length === 0) return Promise.reject(new TypeError('decide() needs at least one check'));
      const guard = decideOptions?.guard;
      if (slotOfKey !== undefined && checks.length > 1) {
        const slot = slotOfKey(keyOf(checks));
        for (let i = 1; i < checks.length; i++) {
          if (slotOfKey((checks[i] as Check).key) !== slot)
            return decideAcrossSlots(checks, guard === undefined ? direct : stepsWith(guard), decideOptions?.signal);
        }
      }
      // `abandoned` when the caller gives it: reading `signal` may make an AbortSignal.
      const o = decideOptions;
      const watched = o !== undefined && (o.abandoned !== undefined || o.signal !== undefined);
      // The caller may give up (its deadline) before the reply: an admission that lands after
      // that was never granted to anyone, so it is given back (the caller answered 503, and a
      // retry of that request must not be charged twice).
      const decision = new Promise<Decision>((resolve, reject) =>
        push(
          watched
            ? {
                checks,
                resolve: (d, atUs) => {
                  if (d.allowed && gaveUp(o)) giveBack(guard === undefined ? direct : stepsWith(guard), checks, atUs);
                  resolve(d);
                },
                reject,
              }
            : { checks, resolve, reject },
        ),
      );
      return guard === undefined ? decision : guard(keyOf(checks), () => decision);
    },
    release,
    fleet: (key: string, member: string, ttlMs: number) => calls.fleet(key, member, ttlMs),
    async adjust(check: Check, delta: number, atUs: number): Promise<void> {
      if (check.algorithm === 'concurrency') throw new TypeError('adjust(): a concurrency check has no cost to settle');
      await calls.adjust(check, delta, atUs);
    },
    async setOverride(key: string, numbers: OverrideNumbers, ttlMs?: number): Promise<void> {
      await connection.set(overrideKey(key), encodeOverride(numbers), ttlMs === undefined ? undefined : Math.max(1, Math.round(ttlMs)));
    },
    async clearOverride(key: string): Promise<void> {
      await connection.del(overrideKey(key));
    },
    async peek(checks: readonly Check[]): Promise<Decision> {
      // The settle script's read (no give-back), per slot; a penalty's block from its key.
      const remaining: number[] = [];
      const resetUs: number[] = [];
      let retryAfterUs = 0;
      let blocked = 0;
      for (let i = 0; i < checks.length; i++) {
        const c = checks[i] as Check;
        const [row] = await calls.settle([c], -1);
        let left = row?.remaining ?? 0;
        let reset = row?.resetUs ?? 0;
        let retry = row?.retryUs ?? 0;
        if (c.penalty !== undefined && Number(await connection.command(penaltyKey(c.key), ['GET', penaltyKey(c.key)])) === BLOCKED) {
          const ms = Number(await connection.command(penaltyKey(c.key), ['PTTL', penaltyKey(c.key)]));
          blocked |= 1 << i;
          left = 0;
          reset = retry = Math.max(1000, ms) * 1000;
        }
        remaining.push(left);
        resetUs.push(reset);
        if (retry > retryAfterUs) retryAfterUs = retry;
      }
      const seen = { allowed: retryAfterUs === 0, retryAfterUs, remaining, resetUs };
      return blocked === 0 ? seen : { ...seen, blocked };
    },
    async reset(key: string): Promise<void> {
      await connection.command(key, ['DEL', key, penaltyKey(key)]);
    },
    async block(key: string, ms: number): Promise<void> {
      const p = penaltyKey(key);
      await connection.command(p, ms <= 0 ? ['DEL', p] : ['SET', p, BLOCKED, 'PX', Math.max(1, Math.round(ms))]);
    },
    close() {
      events.close();
      connection.close();
      return Promise.resolve();
    },
  };
}
