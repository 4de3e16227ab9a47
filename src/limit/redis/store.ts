import calculateSlot from 'cluster-key-slot';
import { Cluster, ReplyError, type Redis } from 'ioredis';
import { positiveInteger } from '../../internal/options';
import { redisOutageCause } from '../../redis/outage-cause';
import { StoreUnavailableError } from '../store-unavailable';
import { overrideKey } from '../key-format';
import type { Check } from '../types';
import type { Decision, DecideOptions, OverrideNumbers, RateLimitStore } from '../store';
import { decideAcrossSlots, giveBack, keyOf, type SlotSteps, type TimedDecision } from './across-slots';
import { createTurnBatcher, type Pending } from './batcher';
import { watchCluster } from './cluster-watch';
import { createReleaseBatcher } from './releases';
import { DECIDE_SCRIPT, RELEASE_SCRIPT, SETTLE_SCRIPT } from './scripts';
import { encodeDecide, encodeOverride, encodeRelease, encodeSettle, parseDecide, parseSettle, type ScriptCall } from './wire';

/** Options of {@link createRedisStore}. */
export interface RedisStoreOptions {
  /** An ioredis client (standalone, Sentinel or Cluster). The store does not close it. */
  readonly client: Redis | Cluster;
  /**
   * Most decisions sent in one script call. The decisions made in one event-loop turn are
   * coalesced into one `EVALSHA` (per hash slot on Cluster); `1` sends one call per decision.
   */
  readonly maxBatch?: number;
}

/** Defaults of {@link createRedisStore}. */
export const REDIS_STORE_DEFAULTS = Object.freeze({ maxBatch: 128 });

type ScriptCommand = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

/** The client's command running `lua` (defined once per client: ioredis sends EVALSHA, EVAL after NOSCRIPT). */
function scriptCommand(client: Redis | Cluster, name: string, lua: string): (call: ScriptCall) => Promise<unknown> {
  const commands = client as unknown as Record<string, ScriptCommand>;
  if (typeof commands[name] !== 'function') client.defineCommand(name, { lua });
  const command = commands[name] as ScriptCommand;
  return (call) => command.call(client, call.numKeys, ...call.args);
}

/** Whether a decision's caller has stopped waiting (`abandoned` when given: it makes no AbortSignal). */
const gaveUp = (o: DecideOptions): boolean => (o.abandoned !== undefined ? o.abandoned() : o.signal?.aborted === true);

/**
 * The Redis store: every decision is one pass of one Lua script, with the clock from Redis
 * `TIME`. The decisions of one event-loop turn share a call (batcher.ts), so a busy process pays
 * one round trip and one script start for many requests; a call failing fails each of its
 * decisions. On Cluster a decision whose keys share a slot (one identity, any number of
 * policies) is still one call; one over several slots is decided slot by slot (across-slots.ts).
 * The parts: wire.ts (the scripts' arguments and replies), scripts.ts, batcher.ts,
 * releases.ts, across-slots.ts, cluster-watch.ts; here, the wiring.
 */
export function createRedisStore(options: RedisStoreOptions): RateLimitStore {
  const { client } = options;
  const maxBatch = options.maxBatch ?? REDIS_STORE_DEFAULTS.maxBatch;
  positiveInteger('redisStore', 'maxBatch', maxBatch);
  const decideCommand = scriptCommand(client, 'rampartDecide', DECIDE_SCRIPT);
  const settleCommand = scriptCommand(client, 'rampartSettle', SETTLE_SCRIPT);
  const releaseCommand = scriptCommand(client, 'rampartRelease', RELEASE_SCRIPT);
  const cluster = client instanceof Cluster ? watchCluster(client) : undefined;
  const slotOfKey = cluster === undefined ? undefined : calculateSlot;
  const unhook: (() => void)[] = [];

  /**
   * A failed call's error as the limiter should see it: when the client's connections said why
   * it cannot serve (outage-cause.ts; a client from createRedisClient), a
   * {@link StoreUnavailableError} naming that cause (`connect ECONNREFUSED 127.0.0.1:6379`)
   * instead of what ioredis says of the call ("Stream isn't writeable..."). A server's reply
   * (`NOSCRIPT`, `OOM`...) stays as it is. Runs once per failed call, never on a success.
   */
  function unavailable(err: unknown, key: string): unknown {
    cluster?.afterFailure();
    if (err instanceof ReplyError || err instanceof StoreUnavailableError) return err;
    const node = cluster === undefined ? undefined : (client as Cluster).slots[calculateSlot(key)]?.[0];
    const cause = redisOutageCause(client, node);
    return cause === undefined ? err : new StoreUnavailableError(cause, { cause: err });
  }

  const push = createTurnBatcher({
    maxBatch,
    slotOf: slotOfKey === undefined ? undefined : (checks) => slotOfKey(keyOf(checks)),
    send: (batch: readonly Pending[]) =>
      decideCommand(encodeDecide(batch)).then(
        (reply) => {
          let parsed;
          try {
            parsed = parseDecide(reply, batch);
          } catch (err) {
            for (const p of batch) p.reject(err);
            return;
          }
          for (let i = 0; i < batch.length; i++) (batch[i] as Pending).resolve(parsed.decisions[i] as Decision, parsed.atUs);
        },
        (err: unknown) => {
          const e = unavailable(err, keyOf((batch[0] as Pending).checks));
          for (const p of batch) p.reject(e);
        },
      ),
  });

  const release = createReleaseBatcher({
    maxBatch,
    slotOf: slotOfKey,
    send: (checks) =>
      releaseCommand(encodeRelease(checks)).catch((err: unknown) => {
        throw unavailable(err, keyOf(checks));
      }),
  });

  const settle = (checks: readonly Check[], atUs: number) =>
    settleCommand(encodeSettle(checks, atUs)).then(
      (reply) => parseSettle(reply, checks.length),
      (err: unknown) => {
        throw unavailable(err, keyOf(checks));
      },
    );
  /** A step of a decision across slots (or a give-back), through `guard`. */
  const stepsWith = (guard: SlotSteps['guard']): SlotSteps => ({
    decide: (checks) =>
      new Promise<TimedDecision>((resolve, reject) => push({ checks, resolve: (decision, atUs) => resolve({ decision, atUs }), reject })),
    settle,
    guard,
  });
  const direct = stepsWith((_key, call) => call());

  /** Registers a client listener until `off()` or the store's close. */
  function hook(event: string, fn: () => void): () => void {
    client.on(event, fn);
    const off = () => {
      client.off(event, fn);
      const k = unhook.indexOf(off);
      if (k !== -1) unhook.splice(k, 1);
    };
    unhook.push(off);
    return off;
  }

  return {
    name: 'redis',
    ...(cluster === undefined
      ? {}
      : {
          partition: cluster.partition,
          // After each slot-map refresh: the masters that own a slot now.
          onTopology: (listener: (domains: ReadonlySet<string>) => void) => hook('refresh', () => listener(cluster.owners())),
        }),
    onRecover(listener: (domain?: string) => void) {
      // The whole client (re)connected. On Cluster a slot with a new owner needs no event: its
      // keys map to another domain, and so to another breaker, as soon as the slot map says so.
      const offReady = hook('ready', () => listener());
      if (cluster === undefined) return offReady;
      const offNodes = cluster.watchNodes(listener);
      unhook.push(offNodes);
      return () => {
        offReady();
        offNodes();
      };
    },
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
    async setOverride(key: string, numbers: OverrideNumbers, ttlMs?: number): Promise<void> {
      const value = encodeOverride(numbers);
      if (ttlMs === undefined) await client.set(overrideKey(key), value);
      else await client.set(overrideKey(key), value, 'PX', Math.max(1, Math.round(ttlMs)));
    },
    async clearOverride(key: string): Promise<void> {
      await client.del(overrideKey(key));
    },
    close() {
      cluster?.close();
      // The client outlives the store: take back what the store hung on it.
      for (const u of unhook.splice(0)) u();
      return Promise.resolve();
    },
  };
}
