import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import {
  createMemoryStore,
  createMetrics,
  createRateLimiter,
  createRedisClient,
  createRedisStore,
  parsePolicySet,
  PolicyError,
  type RateLimitStore,
} from '../../src';
import { TEST_REDIS_URL } from '../support/redis-server';
import { TEST_DEADLINE_MS } from '../support/deadline';
import { limitedApp } from '../support/limiter-app';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('penalties: a client hammering at the limit is blocked, not let back in at each refill', function () {
  this.timeout(30_000);

  for (const kind of ['memory', 'redis'] as const) {
    it(`${kind}: 3 refusals in 10 s block for 2 s (429 "blocked", Retry-After 2, outcome="blocked"), through refills; then admitted again`, async () => {
      const client = kind === 'redis' ? createRedisClient(TEST_REDIS_URL) : undefined;
      if (client !== undefined) await once(client, 'ready');
      const store: RateLimitStore = client === undefined ? createMemoryStore() : createRedisStore({ client });
      const metrics = createMetrics({ processMetrics: false });
      const limiter = createRateLimiter({
        deadlineMs: TEST_DEADLINE_MS,
        store,
        prefix: `pen${randomBytes(3).toString('hex')}`,
        observer: metrics.rateLimit,
        policies: {
          // One request every 500 ms.
          search: { algorithm: 'token_bucket', rps: 2, burst: 1, key: 'ip', penalty: { denials: 3, withinSeconds: 10, blockSeconds: 2 } },
        },
      });
      const app = limitedApp(limiter.limit('search'), { path: '/search' });
      const blockedCount = async () =>
        Number(
          /rampart_rate_limit_decisions_total\{policy="search",outcome="blocked"\} (\d+)/.exec(await metrics.registry.metrics())?.[1] ?? 0,
        );
      try {
        assert.equal((await request(app).get('/search')).status, 200);
        const refused = [];
        for (let i = 0; i < 3; i++) refused.push(await request(app).get('/search'));
        assert.deepEqual(
          refused.map((r) => [r.status, r.body.blocked ?? false]),
          [
            [429, false],
            [429, false],
            [429, true],
          ],
        );
        const third = refused[2] as request.Response;
        assert.equal(third.headers['retry-after'], '2');
        assert.deepEqual(third.body, {
          error: 'RATE_LIMITED',
          detail: 'Blocked after repeated refusals (policy "search")',
          policy: 'search',
          blocked: true,
          retry_after: 2,
        });
        assert.equal(await blockedCount(), 1);
        // The bucket refills (500 ms); the block holds.
        await sleep(700);
        const during = await request(app).get('/search');
        assert.deepEqual([during.status, during.body.blocked], [429, true]);
        assert.equal(during.headers['retry-after'], '2', 'about 1.3 s left, rounded up');
        assert.equal(await blockedCount(), 2);
        await sleep(1_400);
        assert.equal((await request(app).get('/search')).status, 200, 'admitted once the block ended');
      } finally {
        await limiter.close();
        await store.close();
        await client?.quit();
      }
    });
  }

  it('a penalty is checked at start and in the policies file', () => {
    assert.throws(
      () =>
        createRateLimiter({
          deadlineMs: TEST_DEADLINE_MS,
          store: createMemoryStore(),
          policies: { p: { algorithm: 'token_bucket', rps: 1, burst: 1, penalty: { denials: 0, withinSeconds: 10, blockSeconds: 60 } } },
        }),
      /policy "p": penalty\.denials must be a positive integer/,
    );
    const file = {
      policies: {
        p: { algorithm: 'sliding_window', limit: 5, windowSeconds: 60, penalty: { denials: 10, withinSeconds: 60, blockSeconds: 600 } },
      },
    };
    assert.deepEqual(parsePolicySet(file, {}).policies['p'], file.policies.p);
    assert.throws(
      () => parsePolicySet({ policies: { p: { ...file.policies.p, penalty: { denials: 10, withinSeconds: 60 } } } }, {}),
      (e: unknown) => e instanceof PolicyError && /policies\.p\.penalty\.blockSeconds/.test(e.message),
    );
  });
});
