import { StoreUnavailableError } from '../store-unavailable';
import type { Check } from '../types';
import type { Decision } from '../store';
import { keyOf } from './across-slots';
import type { Pending } from './batcher';
import type { StoreConnection } from './connection';
import { ADJUST_SCRIPT, DECIDE_SCRIPT, FLEET_SCRIPT, RELEASE_SCRIPT, SETTLE_SCRIPT } from './scripts';
import { encodeAdjust, encodeDecide, encodeRelease, encodeSettle, parseDecide, parseSettle, type SettledCheck } from './wire';

/** The Redis store's script calls, each from its arguments to its parsed reply. */
export interface ScriptCalls {
  /** One call for a batch of decisions; settles each of them; never rejects. */
  decide(batch: readonly Pending[]): Promise<void>;
  settle(checks: readonly Check[], atUs: number): Promise<SettledCheck[]>;
  release(checks: readonly Check[]): Promise<unknown>;
  /** Settles one admitted check by `delta` (see RateLimitStore.adjust). */
  adjust(check: Check, delta: number, atUs: number): Promise<unknown>;
  /** One heartbeat of instance `member` into the fleet's set `key`; how many beat within `ttlMs`. */
  fleet(key: string, member: string, ttlMs: number): Promise<number>;
}

/**
 * The scripts' calls on `connection`. A failed call's error is said as the limiter should see it:
 * when the client's connections said why it cannot serve (outage-cause.ts; a client from
 * createRedisClient), a {@link StoreUnavailableError} naming that cause (`connect ECONNREFUSED
 * 127.0.0.1:6379`) instead of what ioredis says of the call ("Stream isn't writeable..."); a
 * server's reply (`NOSCRIPT`, `OOM`...) stays as it is. On Cluster, a failure also starts the
 * watch of the slot map (cluster-watch.ts).
 */
export function scriptCalls(connection: StoreConnection): ScriptCalls {
  const decideCommand = connection.script('rampartDecide', DECIDE_SCRIPT);
  const settleCommand = connection.script('rampartSettle', SETTLE_SCRIPT);
  const releaseCommand = connection.script('rampartRelease', RELEASE_SCRIPT);
  const adjustCommand = connection.script('rampartAdjust', ADJUST_SCRIPT);
  const fleetCommand = connection.script('rampartFleet', FLEET_SCRIPT);

  /** Runs once per failed call, never on a success. */
  function unavailable(err: unknown, checks: readonly Check[]): unknown {
    connection.cluster?.afterFailure();
    if (connection.isReply(err) || err instanceof StoreUnavailableError) return err;
    const cause = connection.outageCause(keyOf(checks));
    return cause === undefined ? err : new StoreUnavailableError(cause, { cause: err });
  }
  const failed = (checks: readonly Check[]) => (err: unknown) => {
    throw unavailable(err, checks);
  };

  return {
    decide: (batch) =>
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
          const e = unavailable(err, (batch[0] as Pending).checks);
          for (const p of batch) p.reject(e);
        },
      ),
    settle: (checks, atUs) => settleCommand(encodeSettle(checks, atUs)).then((reply) => parseSettle(reply, checks.length), failed(checks)),
    release: (checks) => releaseCommand(encodeRelease(checks)).catch(failed(checks)),
    fleet: (key, member, ttlMs) => fleetCommand({ numKeys: 1, args: [key, member, ttlMs] }).then(Number),
    adjust: (check, delta, atUs) => adjustCommand(encodeAdjust(check, delta, atUs)).catch(failed([check])),
  };
}
