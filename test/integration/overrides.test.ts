import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import express, { type Express } from 'express';
import { Redis } from 'ioredis';
import request from 'supertest';
import {
  createMemoryStore,
  createRateLimiter,
  createRedisClient,
  createRedisStore,
  errorHandler,
  OptionsError,
  parsePolicySet,
  type PolicyOptions,
  type RateLimiter,
  type RateLimitStore,
} from '../../src';
import { TEST_REDIS, TEST_REDIS_URL } from '../support/redis-server';
import { TEST_DEADLINE_MS } from '../support/deadline';

/** Per hour: nothing refills during a test. */
const HOURLY = 1 / 3600;

const policies: Record<string, PolicyOptions> = {
  api: { algorithm: 'token_bucket', rps: HOURLY, burst: 2, key: 'principal', overrides: true },
  fixed: { algorithm: 'token_bucket', rps: HOURLY, burst: 2, key: 'principal' },
};

function appFor(limiter: RateLimiter): Express {
  const app = express();
  app.use((req, res, next) => {
    res.locals['principal'] = { id: req.get('x-user') };
    next();
  });
  app.get('/api', limiter.limit('api'), (_req, res) => res.json({ ok: true }));
  app.use(errorHandler());
  return app;
}

async function admitted(app: Express, user: string, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((await request(app).get('/api').set('x-user', user)).status === 200) ok++;
  return ok;
}

describe('overrides: one identity’s own numbers, without a redeploy', function () {
  this.timeout(30_000);

  for (const kind of ['memory', 'redis'] as const) {
    it(`${kind}: setOverride gives one principal burst 5 on the next request of every instance; clearOverride takes it back; other principals keep 2`, async () => {
      const clients = kind === 'redis' ? [createRedisClient(TEST_REDIS_URL), createRedisClient(TEST_REDIS_URL)] : [];
      await Promise.all(clients.map((c) => once(c, 'ready')));
      const memory = createMemoryStore();
      const stores: RateLimitStore[] = kind === 'redis' ? clients.map((client) => createRedisStore({ client })) : [memory, memory];
      const prefix = `ov${randomBytes(3).toString('hex')}`;
      // Two instances of the app sharing one store.
      const [one, two] = stores.map((store) => createRateLimiter({ deadlineMs: TEST_DEADLINE_MS, store, prefix, policies })) as [
        RateLimiter,
        RateLimiter,
      ];
      const [appOne, appTwo] = [appFor(one), appFor(two)];
      try {
        assert.equal(await admitted(appOne, 'u42', 3), 2, 'the policy’s own burst');
        assert.equal((await request(appTwo).get('/api').set('x-user', 'u42')).status, 429, 'refused on the other instance too');
        await one.setOverride('api', 'u42', { burst: 5 });
        // The very next request, on the other instance: no deny cache stands in the way.
        assert.equal(await admitted(appTwo, 'u42', 4), 3, 'burst 5, 2 already used');
        assert.equal(await admitted(appOne, 'u7', 3), 2, 'another principal keeps the policy’s numbers');
        await two.clearOverride('api', 'u42');
        assert.equal(await admitted(appOne, 'u42', 1), 0, 'the own burst again (long spent)');
        if (kind === 'redis') {
          const admin = new Redis(TEST_REDIS.port, TEST_REDIS.host);
          try {
            await one.setOverride('api', 'u43', { rps: 10, burst: 50 }, 60);
            const ttl = await admin.pttl(`${prefix}:api:{p:u43}!o`);
            assert.ok(ttl > 59_000 && ttl <= 60_000, `the override lives ttlSeconds (${ttl} ms)`);
            assert.equal(await admin.get(`${prefix}:api:{p:u43}!o`), '100000 50', 'µs per token and burst');
            await admin.del(`${prefix}:api:{p:u43}!o`, `${prefix}:api:{p:u42}`, `${prefix}:api:{p:u7}`);
          } finally {
            admin.disconnect();
          }
        }
      } finally {
        await one.close();
        await two.close();
        for (const s of new Set(stores)) await s.close();
        for (const c of clients) await c.quit();
      }
    });
  }

  it('refuses an override of a policy without overrides: true, of an unknown policy, or with numbers its algorithm has not; the file reads overrides', async () => {
    const limiter = createRateLimiter({ deadlineMs: TEST_DEADLINE_MS, store: createMemoryStore(), policies });
    await assert.rejects(
      limiter.setOverride('fixed', 'u1', { burst: 5 }),
      (e: unknown) => e instanceof OptionsError && /overrides: true/.test(e.message),
    );
    await assert.rejects(limiter.setOverride('nope', 'u1', { burst: 5 }), /unknown policy "nope"/);
    await assert.rejects(limiter.setOverride('api', 'u1', { limit: 5 }), /override of policy "api": limit must be one of rps, burst/);
    await assert.rejects(limiter.setOverride('api', 'u1', { burst: 0 }), /burst must be a positive integer/);
    await assert.rejects(limiter.setOverride('api', 'u1', { burst: 3 }, -1), /ttlSeconds must be a positive number/);
    await limiter.close();
    const set = parsePolicySet({ policies: { api: { algorithm: 'quota', limit: 100, period: 'day', overrides: true } } }, {});
    assert.equal(set.policies['api']?.overrides, true);
  });
});
