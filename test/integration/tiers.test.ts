import assert from 'node:assert/strict';
import express, { type Express } from 'express';
import request from 'supertest';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  createMemoryStore,
  createRateLimiter,
  createRedisClient,
  createRedisStore,
  errorHandler,
  OptionsError,
  parsePolicySet,
  PolicyError,
  type RateLimiter,
} from '../../src';
import { TEST_REDIS_URL } from '../support/redis-server';
import { TEST_DEADLINE_MS } from '../support/deadline';

/** Per hour: nothing refills during a test. */
const HOURLY = 1 / 3600;

function appFor(limiter: RateLimiter): Express {
  const app = express();
  app.use((req, res, next) => {
    // A signed-in principal, as an authentication middleware would set it.
    const user = req.get('x-user');
    if (user !== undefined) res.locals['principal'] = { id: user, tier: req.get('x-plan') };
    next();
  });
  app.get('/api', limiter.limit('api', 'daily'), (_req, res) => res.json({ ok: true }));
  app.use(errorHandler());
  return app;
}

describe('tiers: numbers per plan, picked per request', () => {
  const policies = {
    api: { algorithm: 'token_bucket', rps: HOURLY, burst: 2, key: 'principal', tiers: { pro: { burst: 5 }, internal: { burst: 50 } } },
    daily: { algorithm: 'quota', limit: 100, period: 'day', key: 'principal', tiers: { pro: { limit: 10_000 } } },
  } as const;

  it('the default tier (res.locals.principal.tier): free 2, pro 5, an unknown tier the policy’s own numbers; headers show the tier’s numbers', async () => {
    const limiter = createRateLimiter({ deadlineMs: TEST_DEADLINE_MS, store: createMemoryStore(), policies });
    const app = appFor(limiter);
    const statuses = async (user: string, plan: string | undefined, n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const r = request(app).get('/api').set('x-user', user);
        out.push((await (plan === undefined ? r : r.set('x-plan', plan))).status);
      }
      return out;
    };
    assert.deepEqual(await statuses('ann', undefined, 3), [200, 200, 429]);
    assert.deepEqual(await statuses('bob', 'pro', 6), [200, 200, 200, 200, 200, 429]);
    assert.deepEqual(await statuses('cid', 'platinum', 3), [200, 200, 429], 'a tier no policy names: the own numbers');
    const pro = await request(app).get('/api').set('x-user', 'dan').set('x-plan', 'pro');
    assert.equal(pro.headers['ratelimit-policy'], '"api";q=5;w=18000, "daily";q=10000;w=86400');
    const free = await request(app).get('/api').set('x-user', 'eve');
    assert.equal(free.headers['ratelimit-policy'], '"api";q=2;w=7200, "daily";q=100;w=86400');
    await limiter.close();
  });

  it('a client that changes tier keeps its bucket (same key): 2 used as free, 3 more as pro', async () => {
    const limiter = createRateLimiter({
      deadlineMs: TEST_DEADLINE_MS,
      store: createMemoryStore(),
      policies,
      tier: (req) => req.get('x-plan'),
    });
    const app = appFor(limiter);
    for (let i = 0; i < 2; i++) assert.equal((await request(app).get('/api').set('x-user', 'fay')).status, 200);
    assert.equal((await request(app).get('/api').set('x-user', 'fay')).status, 429);
    const upgraded: number[] = [];
    for (let i = 0; i < 4; i++) upgraded.push((await request(app).get('/api').set('x-user', 'fay').set('x-plan', 'pro')).status);
    assert.deepEqual(upgraded, [200, 200, 200, 429]);
    await limiter.close();
  });

  for (const kind of ['memory', 'redis'] as const) {
    it(`the README example (${kind}): api 10 for free, 100 for pro (res.locals.principal.plan), with the daily quota's tier`, async () => {
      const client = kind === 'redis' ? createRedisClient(TEST_REDIS_URL) : undefined;
      if (client !== undefined) await once(client, 'ready');
      const store = client === undefined ? createMemoryStore() : createRedisStore({ client });
      const limiter = createRateLimiter({
        deadlineMs: TEST_DEADLINE_MS,
        store,
        prefix: `tier${randomBytes(3).toString('hex')}`,
        policies: {
          api: { algorithm: 'token_bucket', rps: 5, burst: 10, key: 'principal', tiers: { pro: { rps: 50, burst: 100 } } },
          api_daily: { algorithm: 'quota', limit: 1_000, period: 'day', key: 'principal', tiers: { pro: { limit: 100_000 } } },
        },
        tier: (_req, res) => (res.locals['principal'] as { plan?: string } | undefined)?.plan,
      });
      const app = express();
      app.use((req, res, next) => {
        res.locals['principal'] = { id: req.get('x-user'), plan: req.get('x-plan') };
        next();
      });
      app.get('/api', limiter.limit('api', 'api_daily'), (_req, res) => res.json({ ok: true }));
      try {
        const burst = async (user: string, plan?: string) => {
          // 110 requests, 10 at a time.
          let admitted = 0;
          const started = performance.now();
          for (let i = 0; i < 11; i++) {
            const rs = await Promise.all(
              Array.from({ length: 10 }, () => {
                const r = request(app).get('/api').set('x-user', user);
                return plan === undefined ? r : r.set('x-plan', plan);
              }),
            );
            assert.deepEqual(
              rs.filter((r) => r.status !== 200 && r.status !== 429).map((r) => r.text),
              [],
              'only decisions',
            );
            admitted += rs.filter((r) => r.status === 200).length;
          }
          return { admitted, seconds: (performance.now() - started) / 1000 };
        };
        const free = await burst('u-free');
        const pro = await burst('u-pro', 'pro');
        // The burst, and what refilled (5/s, 50/s) while the requests ran, however long they took.
        const most = (b: { seconds: number }, burstSize: number, rps: number) => burstSize + Math.ceil(b.seconds * rps) + 1;
        assert.ok(free.admitted >= 10 && free.admitted <= most(free, 10, 5), `free admitted ${free.admitted} in ${free.seconds} s`);
        assert.ok(pro.admitted >= 100 && pro.admitted <= most(pro, 100, 50), `pro admitted ${pro.admitted} in ${pro.seconds} s`);
        const head = await request(app).get('/api').set('x-user', 'u-new').set('x-plan', 'pro');
        assert.equal(head.headers['ratelimit-policy'], '"api";q=100;w=2, "api_daily";q=100000;w=86400');
      } finally {
        await limiter.close();
        await store.close();
        await client?.quit();
      }
    });
  }

  it('a tier’s mistake stops the limiter at creation, naming the policy and tier; the policies file checks tiers too', () => {
    const make = (tiers: unknown) =>
      createRateLimiter({
        deadlineMs: TEST_DEADLINE_MS,
        store: createMemoryStore(),
        policies: { api: { algorithm: 'token_bucket', rps: 1, burst: 2, tiers } as never },
      });
    assert.throws(
      () => make({ pro: { burst: 0 } }),
      (e: unknown) => e instanceof OptionsError && /policy "api" tier "pro": burst/.test(e.message),
    );
    assert.throws(() => make({ pro: { limit: 5 } }), /policy "api" tier "pro": limit must be one of rps, burst/);
    assert.throws(() => make({ 'p r o': { burst: 5 } }), /tiers must be tier names/);
    assert.throws(
      () =>
        createRateLimiter({
          deadlineMs: TEST_DEADLINE_MS,
          store: createMemoryStore(),
          policies: { w: { algorithm: 'sliding_window', limit: 5, windowSeconds: 1, cost: 4, tiers: { mini: { limit: 3 } } } },
        }),
      /policy "w" tier "mini": cost must be a positive integer no larger than 3/,
    );
    const set = parsePolicySet(
      { policies: { api: { algorithm: 'token_bucket', rps: 1, burst: 2, tiers: { pro: { rps: 10, burst: 20 } } } } },
      {},
    );
    assert.deepEqual(set.policies['api'], { algorithm: 'token_bucket', rps: 1, burst: 2, tiers: { pro: { rps: 10, burst: 20 } } });
    assert.throws(
      () => parsePolicySet({ policies: { api: { algorithm: 'token_bucket', rps: 1, burst: 2, tiers: { pro: { limit: 5 } } } } }, {}),
      (e: unknown) => e instanceof PolicyError && /policies\.api\.tiers\.pro/.test(e.message),
    );
    assert.throws(
      () =>
        parsePolicySet({ policies: { q: { algorithm: 'quota', limit: 9, period: 'day', cost: 4, tiers: { mini: { limit: 3 } } } } }, {}),
      /policies\.q\.tiers\.mini: cost 4 is more than this tier's bucket \(3\)/,
    );
  });
});
