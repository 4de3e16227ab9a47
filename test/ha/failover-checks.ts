// What the HA tests check of a failover, as conditions rather than timings: the machine running
// them may be busy (two cores, other suites beside), so a figure of time goes to the log, and an
// assertion speaks of what was answered, in which order, and why (what the limiter reported).
import assert from 'node:assert/strict';
import { Cluster, type Redis } from 'ioredis';
import { createMetrics, RATE_LIMITER_DEFAULTS, type RateLimitMetrics } from '../../src';
import type { Sample } from '../support/failover-load';

/**
 * Resolves once every command sent on the client's connections before it has run, and what
 * their replies set off (a give-back) has been sent and run too: a PING on each connection
 * (each master's, for a Cluster), a turn, twice.
 */
export async function drained(client: Redis | Cluster): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const connections: Redis[] = client instanceof Cluster ? client.nodes('master') : [client];
    await Promise.all(connections.map((n) => n.ping().catch(() => undefined)));
    await new Promise((r) => setImmediate(r));
  }
}

/** The error code of an answer: a supertest response's body, or a failover-load sample's. */
function codeOf(res: { body?: { error?: unknown }; error?: unknown }): unknown {
  return res.body?.error ?? res.error;
}

/**
 * Sends a request until the limiter decides it. A 503 RATE_LIMITER_UNAVAILABLE here, with the
 * backend up, is the decision deadline (100 ms) passing on a busy machine: the request took
 * nothing (what a late answer admitted is given back), so once that give-back has run
 * (`drained`) it is sent again. A limiter that never decides still fails the test, after 20
 * tries. `retried` counts the tries again, for the log.
 */
export async function decided<T extends { status: number; body?: { error?: unknown }; error?: unknown }>(
  client: Redis | Cluster,
  send: () => PromiseLike<T>,
  retried: { count: number } = { count: 0 },
): Promise<T> {
  for (let i = 0; ; i++) {
    const res = await send();
    if (res.status !== 503 || codeOf(res) !== 'RATE_LIMITER_UNAVAILABLE' || i === 20) return res;
    retried.count++;
    await drained(client);
  }
}

type Reason = Parameters<RateLimitMetrics['backendError']>[1];

/** Everything a limiter reported of its store, with when (ms since `t0`, as the samples). */
export interface Recorded {
  /** Failed store calls: why, and the shard (`host:port` of a Cluster master; '' for one server or several). */
  readonly failures: { readonly at: number; readonly reason: Reason; readonly shard: string }[];
  /** Shard breakers' changes (`undefined`: the shard was forgotten). */
  readonly breakers: { readonly at: number; readonly shard: string; readonly state: string | undefined }[];
  /** Decisions counted so far, over every policy and outcome. */
  readonly decisions: number;
}

/** Prometheus metrics for a limiter (as `createMetrics().rateLimit`), recording what they are told. */
export function recordingMetrics(t0: number): { metrics: RateLimitMetrics; recorded: Recorded } {
  const base = createMetrics({ processMetrics: false }).rateLimit;
  const recorded = { failures: [] as Recorded['failures'], breakers: [] as Recorded['breakers'], decisions: 0 };
  const metrics: RateLimitMetrics = {
    ...base,
    decisionCounter(policy, outcome) {
      const count = base.decisionCounter(policy, outcome);
      return () => {
        recorded.decisions++;
        count();
      };
    },
    backendError(store, reason, shard) {
      recorded.failures.push({ at: performance.now() - t0, reason, shard: shard ?? '' });
      base.backendError(store, reason, shard);
    },
    shardBreakerChanged(store, shard, state) {
      recorded.breakers.push({ at: performance.now() - t0, shard, state });
      base.shardBreakerChanged?.(store, shard, state);
    },
  };
  return { metrics, recorded };
}

/**
 * A request held this long past the decision deadline (100 ms) is taken as held for the
 * failover: ten deadlines, longer than a stall of a busy machine, shorter than a promotion
 * (2–4 s here).
 */
export const HELD_MS = 10 * RATE_LIMITER_DEFAULTS.deadlineMs;

/**
 * Nothing but the documented answers through a failover (`/open` always 200; `/closed` and
 * `/pair` 200 or 503 `RATE_LIMITER_UNAVAILABLE`), and no request held for the failover: none
 * sent more than {@link HELD_MS} before the promotion (`promotedAt`, ms as the samples) was
 * decided (200) by the new master after it. The longest wait goes to the log, not to an
 * assertion: on a busy machine it says more of the machine than of the limiter.
 */
export function assertFailoverAnswers(samples: readonly Sample[], promotedAt: number): void {
  for (const s of samples) {
    if (s.path === '/open') assert.equal(s.status, 200, JSON.stringify(s));
    else assert.ok(s.status === 200 || (s.status === 503 && s.error === 'RATE_LIMITER_UNAVAILABLE'), JSON.stringify(s));
  }
  const held = samples.filter((s) => s.path !== '/open' && s.status === 200 && s.sentAt < promotedAt - HELD_MS && s.doneAt > promotedAt);
  assert.deepEqual(held, [], `requests held for the failover (promoted at ${Math.round(promotedAt)} ms)`);
}

/**
 * Refusals that a busy machine explains and nothing else does: each answered 503
 * `RATE_LIMITER_UNAVAILABLE` no sooner than the decision deadline (a refusal before it would be
 * an error or an open breaker), while the store reported, from `since` (ms as the samples) on,
 * timeouts only on `shards` (no error, no breaker opened there). Returns the refusals, for the log.
 */
export function assertOnlyDeadlineRefusals(
  samples: readonly Sample[],
  recorded: Recorded,
  shards: ReadonlySet<string>,
  what: string,
  since = -Infinity,
): Sample[] {
  const refused = samples.filter((s) => s.status !== 200);
  assert.deepEqual(
    refused.filter(
      (s) => s.status !== 503 || s.error !== 'RATE_LIMITER_UNAVAILABLE' || s.doneAt - s.sentAt < RATE_LIMITER_DEFAULTS.deadlineMs,
    ),
    [],
    `${what}: refused before the decision deadline, or not as the fail mode`,
  );
  const where = [...shards].map((x) => (x === '' ? 'the server' : x)).join(', ');
  const failures = recorded.failures.filter((f) => f.at >= since && shards.has(f.shard) && f.reason !== 'timeout');
  assert.deepEqual(failures, [], `${what}: store failures other than the deadline on ${where}`);
  const opened = recorded.breakers.filter((b) => b.at >= since && shards.has(b.shard) && b.state === 'OPEN');
  assert.deepEqual(opened, [], `${what}: a breaker opened on ${where}`);
  return refused;
}

/**
 * The shards that stayed up kept deciding through another's outage (`window`, ms as the
 * samples). A refusal there must be the deadline passing on a busy machine
 * ({@link assertOnlyDeadlineRefusals}), and such refusals fall anywhere, not on the outage: at
 * most 10 % of their decisions overall, and at most half of those sent during the outage. A
 * client that held their commands for the outage would refuse nearly all of those; with two
 * CPU-burning loops beside the tests, 3–4 % of all were refused, spread over the run.
 */
export function assertOthersDecided(
  samples: readonly Sample[],
  recorded: Recorded,
  shards: ReadonlySet<string>,
  window: readonly [number, number],
): void {
  const decisions = samples.filter((s) => s.path !== '/open');
  assert.ok(decisions.length > 100, `${decisions.length} decisions on the other shards`);
  const refused = assertOnlyDeadlineRefusals(decisions, recorded, shards, 'keys on the other shards');
  assert.ok(
    refused.length <= 0.1 * decisions.length,
    `keys on the other shards: ${refused.length} of ${decisions.length} refused at the deadline`,
  );
  const during = decisions.filter((s) => s.sentAt >= window[0] && s.sentAt < window[1]);
  const refusedDuring = during.filter((s) => s.status !== 200);
  assert.ok(during.length >= 10, `${during.length} decisions on the other shards during the outage`);
  assert.ok(
    refusedDuring.length <= 0.5 * during.length,
    `keys on the other shards during the outage: ${refusedDuring.length} of ${during.length} refused at the deadline`,
  );
}
