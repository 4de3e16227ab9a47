// limiter.consume(): the middleware's decision without a request, on the memory store. The
// same buckets as a request's (an identity given as the app knows it is shaped and hashed as the
// middleware shapes it), the same deny cache, fail modes, counters, leases and input checks.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import request from 'supertest';
import {
  createMemoryStore,
  createMetrics,
  createRateLimiter,
  OptionsError,
  StoreUnavailableError,
  type RateLimitStore,
} from '../../../src';
import { limitedApp } from '../../support/limiter-app';

/** A store whose every decision fails as an outage does. */
function downStore(): RateLimitStore {
  return {
    name: 'down',
    decide: () => Promise.reject(new StoreUnavailableError('connect ECONNREFUSED 127.0.0.1:1')),
    close: () => Promise.resolve(),
  };
}

describe('limiter.consume(): decisions outside a request', () => {
  it('admits exactly the limit under 50 concurrent callers, then refuses with the wait; the numbers per policy', async () => {
    const store = createMemoryStore();
    const limiter = createRateLimiter({
      store,
      policies: { jobs: { algorithm: 'sliding_window', limit: 20, windowSeconds: 60, key: 'principal' } },
    });
    try {
      const results = await Promise.all(Array.from({ length: 50 }, () => limiter.consume('jobs', 'tenant-7')));
      assert.equal(results.filter((r) => r.allowed).length, 20);
      const refused = results.filter((r) => !r.allowed);
      assert.ok(refused.every((r) => r.retryAfterMs > 0 && r.retryAfterMs <= 60_000 && r.policies[0]?.remaining === 0));
      assert.ok(refused.every((r) => r.decidedBy === 'store' || r.decidedBy === 'deny_cache'));
      const first = results.find((r) => r.allowed);
      assert.deepEqual(Object.keys(first?.policies[0] ?? {}).sort(), ['limit', 'name', 'remaining', 'resetMs']);
      assert.equal(first?.policies[0]?.limit, 20);
      assert.equal((await limiter.consume('jobs', 'tenant-8')).allowed, true, 'another identity has its own bucket');
    } finally {
      await limiter.close();
      await store.close();
    }
  });

  it('shares the buckets of the middleware: an address given as the app knows it is the request’s (IPv6 /64 included)', async () => {
    const store = createMemoryStore();
    const limiter = createRateLimiter({ store, policies: { api: { algorithm: 'token_bucket', rps: 0.001, burst: 3, key: 'ip' } } });
    try {
      const app = limitedApp(limiter.limit('api'), { trustProxy: true });
      assert.equal((await request(app).get('/').set('x-forwarded-for', '2001:db8:1:2::5')).status, 200);
      const c = await limiter.consume('api', '2001:db8:1:2:ffff::1');
      assert.deepEqual([c.allowed, c.policies[0]?.remaining], [true, 1], 'the same /64: one bucket');
      assert.equal((await request(app).get('/').set('x-forwarded-for', '2001:db8:1:2::9')).status, 200);
      assert.equal((await request(app).get('/').set('x-forwarded-for', '2001:db8:1:2::9')).status, 429);
      const after = await limiter.consume('api', '2001:db8:1:2::77');
      assert.equal(after.allowed, false);
    } finally {
      await limiter.close();
      await store.close();
    }
  });

  it('several policies of different keys in one all-or-nothing decision: a refusal by one takes nothing from the other', async () => {
    const store = createMemoryStore();
    const limiter = createRateLimiter({
      store,
      denyCache: false,
      policies: {
        per_ip: { algorithm: 'token_bucket', rps: 0.001, burst: 10, key: 'ip' },
        per_user: { algorithm: 'token_bucket', rps: 0.001, burst: 1, key: 'principal' },
      },
    });
    try {
      const who = { ip: '198.51.100.4', principal: 'user-1' };
      assert.equal((await limiter.consume(['per_ip', 'per_user'], who)).allowed, true);
      const refused = await limiter.consume(['per_ip', 'per_user'], who);
      assert.equal(refused.allowed, false);
      assert.deepEqual(
        refused.policies.map((p) => [p.name, p.remaining]),
        [
          ['per_ip', 9],
          ['per_user', 0],
        ],
        'per_ip untouched by the refusal',
      );
      await assert.rejects(limiter.consume(['per_ip', 'per_user'], { ip: '198.51.100.4' }), OptionsError);
    } finally {
      await limiter.close();
      await store.close();
    }
  });

  it('a cost: charged in the policy’s units, refused when it does not fit (taking nothing); cost and names checked', async () => {
    const store = createMemoryStore();
    const limiter = createRateLimiter({
      store,
      denyCache: false,
      policies: { tokens: { algorithm: 'token_bucket', rps: 0.001, burst: 100, key: 'principal' } },
    });
    try {
      assert.equal((await limiter.consume('tokens', 'model-a', { cost: 70 })).policies[0]?.remaining, 30);
      const refused = await limiter.consume('tokens', 'model-a', { cost: 40 });
      assert.deepEqual([refused.allowed, refused.policies[0]?.remaining], [false, 30]);
      assert.equal((await limiter.consume('tokens', 'model-a', { cost: 30 })).allowed, true);
      for (const bad of [0, -1, 1.5, 101, Number.NaN])
        await assert.rejects(limiter.consume('tokens', 'x', { cost: bad }), OptionsError, String(bad));
      await assert.rejects(limiter.consume('nope', 'x'), /unknown policy "nope"/);
      await assert.rejects(limiter.consume([], 'x'), OptionsError);
      await assert.rejects(limiter.consume('tokens', ''), OptionsError);
    } finally {
      await limiter.close();
      await store.close();
    }
  });

  it('whatever identity string it is given (fast-check), the key it makes is the middleware’s for the same value', async () => {
    const store = createMemoryStore();
    const limiter = createRateLimiter({
      store,
      denyCache: false,
      principal: (req) => req.get('x-user'),
      policies: { u: { algorithm: 'token_bucket', rps: 0.001, burst: 2, key: 'principal' } },
    });
    const app = limitedApp(limiter.limit('u'));
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          // Header-safe values: what a request can carry.
          fc.string({ minLength: 1, maxLength: 40 }).filter((s) => /^[\x21-\x7e]+$/.test(s)),
          async (value) => {
            // Each run its own identity: a value fast-check gives twice is not a drained bucket.
            const user = `${value}#${++run}`;
            assert.equal((await request(app).get('/').set('x-user', user)).status, 200);
            const c = await limiter.consume('u', user);
            assert.deepEqual([c.allowed, c.policies[0]?.remaining], [true, 0], user);
            assert.equal((await request(app).get('/').set('x-user', user)).status, 429, user);
          },
        ),
        { numRuns: 60, seed: Number(process.env['FC_SEED'] ?? Date.now() % 2 ** 31), verbose: 1 },
      );
    } finally {
      await limiter.close();
      await store.close();
    }
  });

  it('the deny cache answers a known refusal without the store; counters and decidedBy say so', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const store = createMemoryStore();
    const limiter = createRateLimiter({
      store,
      observer: metrics.rateLimit,
      policies: { p: { algorithm: 'token_bucket', rps: 0.001, burst: 1, key: 'principal' } },
    });
    try {
      const seen = [await limiter.consume('p', 'a'), await limiter.consume('p', 'a'), await limiter.consume('p', 'a')];
      assert.deepEqual(
        seen.map((r) => [r.allowed, r.decidedBy]),
        [
          [true, 'store'],
          [false, 'store'],
          [false, 'deny_cache'],
        ],
      );
      const text = await metrics.registry.metrics();
      assert.match(text, /rampart_rate_limit_decisions_total\{policy="p",outcome="allowed"\} 1/);
      assert.match(text, /rampart_rate_limit_decisions_total\{policy="p",outcome="limited"\} 2/);
    } finally {
      await limiter.close();
      await store.close();
    }
  });

  it('a store outage: the policy’s fail mode decides, said and counted (closed: refused for 1 s; open: allowed)', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const limiter = createRateLimiter({
      store: downStore(),
      observer: metrics.rateLimit,
      policies: {
        strict: { algorithm: 'token_bucket', rps: 1, burst: 1, failMode: 'closed' },
        lenient: { algorithm: 'token_bucket', rps: 1, burst: 1, failMode: 'open' },
      },
    });
    try {
      const closed = await limiter.consume('strict', '203.0.113.1');
      assert.deepEqual([closed.allowed, closed.decidedBy, closed.retryAfterMs], [false, 'fail_closed', 1000]);
      assert.match(String(closed.failure), /ECONNREFUSED 127\.0\.0\.1:1/);
      const open = await limiter.consume('lenient', '203.0.113.1');
      assert.deepEqual([open.allowed, open.decidedBy], [true, 'fail_open']);
      const text = await metrics.registry.metrics();
      assert.match(text, /outcome="failed_closed"\} 1/);
      assert.match(text, /outcome="failed_open"\} 1/);
    } finally {
      await limiter.close();
    }
  });

  it('concurrency: an admission holds its leases until release()', async () => {
    const store = createMemoryStore();
    const limiter = createRateLimiter({ store, policies: { workers: { algorithm: 'concurrency', limit: 2, key: 'principal' } } });
    try {
      const a = await limiter.consume('workers', 'q');
      const b = await limiter.consume('workers', 'q');
      assert.deepEqual([a.allowed, b.allowed, (await limiter.consume('workers', 'q')).allowed], [true, true, false]);
      await a.release();
      assert.equal((await limiter.consume('workers', 'q')).allowed, true);
    } finally {
      await limiter.close();
      await store.close();
    }
  });

  it('a shadow policy never refuses: allowed, left out of the numbers, counted shadow_limited', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const store = createMemoryStore();
    const limiter = createRateLimiter({
      store,
      observer: metrics.rateLimit,
      policies: { trial: { algorithm: 'token_bucket', rps: 0.001, burst: 1, key: 'principal', mode: 'shadow' } },
    });
    try {
      await limiter.consume('trial', 'z');
      const second = await limiter.consume('trial', 'z');
      assert.deepEqual([second.allowed, second.policies.length], [true, 0]);
      assert.match(await metrics.registry.metrics(), /policy="trial",outcome="shadow_limited"\} 1/);
    } finally {
      await limiter.close();
      await store.close();
    }
  });
});
