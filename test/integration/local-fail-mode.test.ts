import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { createMetrics, createRateLimiter, createRedisClient, createRedisStore, parsePolicySet, type RateLimiter } from '../../src';
import { freePort } from '../support/redis-server';
import { limitedApp } from '../support/limiter-app';

/** The decisions counted for `policy`, by outcome. */
async function outcomes(metrics: ReturnType<typeof createMetrics>, policy: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.rateLimit.decisions.get()).values)
    if (v.labels['policy'] === policy && v.value > 0) out[String(v.labels['outcome'])] = v.value;
  return out;
}

describe("failMode 'local': decided in process with this instance's share while the store is down", function () {
  this.timeout(20_000);
  let limiter: RateLimiter;
  let metrics: ReturnType<typeof createMetrics>;
  let client: ReturnType<typeof createRedisClient>;

  beforeEach(async () => {
    // A Redis nobody listens on: every decision fails at once (connect ECONNREFUSED).
    client = createRedisClient(`redis://127.0.0.1:${await freePort()}`, { onError: () => undefined });
    metrics = createMetrics({ processMetrics: false });
    limiter = createRateLimiter({
      store: createRedisStore({ client }),
      prefix: `loc${randomBytes(3).toString('hex')}`,
      observer: metrics.rateLimit,
      fleet: { size: 3 },
      policies: {
        window: { algorithm: 'sliding_window', limit: 7, windowSeconds: 3600, failMode: 'local' },
        bucket: { algorithm: 'token_bucket', rps: 0.001, burst: 12, cost: 2, failMode: 'local' },
        lenient: { algorithm: 'token_bucket', rps: 0.001, burst: 1, failMode: 'open' },
        strict: { algorithm: 'token_bucket', rps: 1, burst: 10, failMode: 'closed' },
        slots: { algorithm: 'concurrency', limit: 6, failMode: 'local' },
      },
    });
  });
  afterEach(async () => {
    await limiter.close();
    client.disconnect();
  });

  it('a third of a window of 7 (2): two admitted, then 429 with RateLimit counted by the share; counted local_allowed / local_limited', async () => {
    const app = limitedApp(limiter.limit('window'));
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(app).get('/')).status);
    assert.deepEqual(statuses, [200, 200, 429, 429]);
    const refused = await request(app).get('/');
    assert.equal(refused.body.error, 'RATE_LIMITED');
    assert.match(String(refused.headers['ratelimit']), /^"window";r=0;t=\d+$/);
    assert.deepEqual(await outcomes(metrics, 'window'), { local_allowed: 2, local_limited: 3 });
  });

  it("a token bucket's burst and rate by a third, never below the request's cost; an open policy beside it is left out; a closed one makes it 503", async () => {
    const both = limitedApp(limiter.limit('bucket', 'lenient'));
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(both).get('/')).status);
    // burst 12 / 3 = 4 tokens, 2 a request: 2 admitted; "lenient" (burst 1) is not decided.
    assert.deepEqual(statuses, [200, 200, 429, 429]);
    const closed = await request(limitedApp(limiter.limit('bucket', 'strict'))).get('/');
    assert.equal(closed.status, 503);
    assert.equal(closed.body.error, 'RATE_LIMITER_UNAVAILABLE');
  });

  it('consume() decides locally too (decidedBy "local"), and a concurrency share is given back on release', async () => {
    const first = await limiter.consume('slots', 'job-runner');
    const second = await limiter.consume('slots', 'job-runner');
    const third = await limiter.consume('slots', 'job-runner');
    assert.deepEqual(
      [first, second, third].map((c) => [c.allowed, c.decidedBy]),
      [
        [true, 'local'],
        [true, 'local'],
        [false, 'local'],
      ],
    );
    assert.match(first.failure ?? '', /ECONNREFUSED/);
    await first.release();
    assert.equal((await limiter.consume('slots', 'job-runner')).allowed, true, 'the released slot is free again');
  });

  it('the policies file takes failMode "local"; the fleet size must be a positive integer', () => {
    const set = parsePolicySet({ policies: { api: { algorithm: 'token_bucket', rps: 5, burst: 10, failMode: 'local' } } }, {});
    assert.equal(set.policies['api']?.failMode, 'local');
    assert.throws(
      () => createRateLimiter({ store: createRedisStore({ client }), fleet: { size: 0 }, policies: {} }),
      /rateLimit: fleet\.size must be a positive integer/,
    );
  });
});
