// The sliding window counter through the middleware on a real Redis: its headers and 429, a tier,
// shadow mode, a penalty, and its place among a request's policies (all-or-nothing). Its
// arithmetic is the store contract's (every store, client and topology); this is the way it is
// used.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import request from 'supertest';
import { createMetrics, createRateLimiter, createRedisClient, createRedisStore, type RateLimiter } from '../../src';
import { TEST_DEADLINE_MS } from '../support/deadline';
import { limitedApp } from '../support/limiter-app';
import { TEST_REDIS_URL } from '../support/redis-server';

const HOUR = 3600;

describe('sliding window counter through the middleware (real Redis)', () => {
  let client: ReturnType<typeof createRedisClient>;
  const limiters: RateLimiter[] = [];
  before(async () => {
    client = createRedisClient(TEST_REDIS_URL);
    await once(client, 'ready');
  });
  afterEach(async () => {
    for (const l of limiters.splice(0)) await l.close();
  });
  after(async () => {
    const keys = await client.keys('swct*');
    if (keys.length > 0) await client.del(...keys);
    await client.quit();
  });
  let prefix = '';
  const limiterWith = (options: Omit<Parameters<typeof createRateLimiter>[0], 'store'>) => {
    prefix = `swct${randomBytes(3).toString('hex')}`;
    const limiter = createRateLimiter({
      deadlineMs: TEST_DEADLINE_MS,
      store: createRedisStore({ client }),
      prefix,
      principal: (req) => req.get('x-user'),
      ...options,
    });
    limiters.push(limiter);
    return limiter;
  };

  it('admits the limit with RateLimit fields, then 429 in our JSON with Retry-After; a tier has its own limit; one integer in Redis', async () => {
    const limiter = limiterWith({
      tier: (req) => req.get('x-plan'),
      policies: {
        api: { algorithm: 'sliding_window_counter', limit: 3, windowSeconds: HOUR, key: 'principal', tiers: { pro: { limit: 5 } } },
      },
    });
    const app = limitedApp(limiter.limit('api'));
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await request(app).get('/').set('x-user', 'ann');
      seen.push(`${r.status} ${String(r.headers['ratelimit']).replace(/;t=\d+/, '')}`);
      assert.equal(r.headers['ratelimit-policy'], `"api";q=3;w=${HOUR}`);
      if (r.status === 429) {
        assert.equal(r.body.error, 'RATE_LIMITED');
        assert.equal(r.body.policy, 'api');
        assert.ok(Number(r.headers['retry-after']) >= 1);
      }
    }
    assert.deepEqual(seen, ['200 "api";r=2', '200 "api";r=1', '200 "api";r=0', '429 "api";r=0']);
    const pro: number[] = [];
    for (let i = 0; i < 6; i++) pro.push((await request(app).get('/').set('x-user', 'bob').set('x-plan', 'pro')).status);
    assert.deepEqual(pro, [200, 200, 200, 200, 200, 429]);
    const keys = await client.keys(`${prefix}*`);
    assert.equal(keys.length, 2, keys.join(' '));
    for (const key of keys) assert.equal(await client.call('OBJECT', 'ENCODING', key), 'int', key);
  });

  it('shadow mode counts what it would refuse and never refuses; a penalty blocks after its refusals; all-or-nothing with a token bucket', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const limiter = limiterWith({
      observer: metrics.rateLimit,
      policies: {
        trial: { algorithm: 'sliding_window_counter', limit: 1, windowSeconds: HOUR, key: 'principal', mode: 'shadow' },
        guarded: {
          algorithm: 'sliding_window_counter',
          limit: 1,
          windowSeconds: HOUR,
          key: 'principal',
          penalty: { denials: 2, withinSeconds: 60, blockSeconds: 600 },
        },
        bucket: { algorithm: 'token_bucket', rps: 1 / HOUR, burst: 5, key: 'principal' },
      },
    });
    const shadow = limitedApp(limiter.limit('trial'));
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await request(shadow).get('/').set('x-user', 'cid')).status);
    assert.deepEqual(statuses, [200, 200, 200]);
    assert.match(await metrics.registry.metrics(), /policy="trial",outcome="shadow_limited"\} 2/);
    const guarded = limitedApp(limiter.limit('guarded', 'bucket'));
    const g: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await request(guarded).get('/').set('x-user', 'dan');
      g.push(`${r.status} ${String(r.body.error ?? '')}`);
    }
    assert.deepEqual(g.slice(0, 2), ['200 ', '429 RATE_LIMITED']);
    assert.equal(g[3], '429 RATE_LIMITED');
    // The bucket was charged only for the admitted request: 4 of 5 left.
    const bucketOnly = limitedApp(limiter.limit('bucket'));
    const left = await request(bucketOnly).get('/').set('x-user', 'dan');
    assert.equal(String(left.headers['ratelimit']).replace(/;t=\d+/, ''), '"bucket";r=3');
  });
});
