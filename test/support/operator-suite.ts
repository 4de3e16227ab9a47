// The operator's controls on a store (test/unit/limit/operator.test.ts: memory;
// test/integration/operator.test.ts: Redis on every client): peek charges nothing, reset empties a bucket and
// lifts a penalty, block refuses for its time (only where a policy has a penalty), unblock lifts
// it; identities as the app knows them, hashed as the middleware hashes a request's.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createRateLimiter, OptionsError, type RateLimiter, type RateLimitStore } from '../../src';
import { limitedApp } from './limiter-app';

export function operatorSuite(kind: string, open: () => Promise<{ store: RateLimitStore; close(): Promise<void> }>): void {
  describe(`operator controls: peek, reset, block, unblock (${kind})`, () => {
    let store: RateLimitStore;
    let close: () => Promise<void>;
    let limiter: RateLimiter;
    const prefix = `rampart-op-${Math.random().toString(36).slice(2, 8)}`;
    beforeEach(async () => {
      ({ store, close } = await open());
      limiter = createRateLimiter({
        store,
        prefix,
        principal: (req) => req.get('x-user'),
        policies: {
          api: { algorithm: 'token_bucket', rps: 0.001, burst: 3, key: 'principal' },
          login: {
            algorithm: 'sliding_window',
            limit: 2,
            windowSeconds: 60,
            key: 'principal',
            penalty: { denials: 1, withinSeconds: 60, blockSeconds: 600 },
          },
          window: { algorithm: 'sliding_window', limit: 5, windowSeconds: 60, key: 'ip' },
        },
      });
    });
    afterEach(async () => {
      await limiter.close();
      await close();
    });

    it('peek tells what is left and charges nothing, for the identity the middleware keys', async () => {
      const app = limitedApp(limiter.limit('api'));
      assert.equal((await request(app).get('/').set('x-user', 'ana')).status, 200);
      for (let i = 0; i < 3; i++) {
        const seen = await limiter.peek('api', 'ana');
        assert.deepEqual([seen.limit, seen.remaining, seen.allowed, seen.blocked], [3, 2, true, false]);
        assert.match(seen.key, new RegExp(`^${prefix}:api:\\{p:ana\\}$`));
      }
      assert.equal((await request(app).get('/').set('x-user', 'ana')).status, 200);
      assert.equal((await request(app).get('/').set('x-user', 'ana')).status, 200);
      const empty = await limiter.peek('api', 'ana');
      assert.deepEqual([empty.remaining, empty.allowed], [0, false]);
      assert.ok(empty.retryAfterMs > 0);
      const window = await limiter.peek('window', '203.0.113.5');
      assert.deepEqual([window.remaining, window.allowed], [5, true]);
    });

    it('reset empties the bucket: the next request is admitted', async () => {
      const app = limitedApp(limiter.limit('api'));
      for (let i = 0; i < 3; i++) await request(app).get('/').set('x-user', 'ben');
      assert.equal((await request(app).get('/').set('x-user', 'ben')).status, 429);
      await limiter.reset('api', 'ben');
      assert.equal(
        (await request(app).get('/').set('x-user', 'ben')).status,
        200,
        'admitted after the reset (the deny cache forgot it too)',
      );
      assert.equal((await limiter.peek('api', 'ben')).remaining, 2);
    });

    it('a penalty’s block is seen by peek, lifted by reset and by unblock; block puts one in place for its time', async () => {
      const app = limitedApp(limiter.limit('login'));
      const login = async () => (await request(app).get('/').set('x-user', 'cy')).status;
      assert.deepEqual([await login(), await login(), await login()], [200, 200, 429]);
      assert.equal((await limiter.peek('login', 'cy')).blocked, true, 'the refusal was its strike: blocked');
      await limiter.reset('login', 'cy');
      assert.equal(await login(), 200, 'reset lifts the penalty');
      await limiter.block('login', 'cy', 300);
      const blocked = await limiter.peek('login', 'cy');
      assert.equal(blocked.blocked, true);
      assert.ok(blocked.retryAfterMs > 290_000 && blocked.retryAfterMs <= 300_000, String(blocked.retryAfterMs));
      assert.equal(await login(), 429);
      await limiter.unblock('login', 'cy');
      assert.equal((await limiter.peek('login', 'cy')).blocked, false);
      assert.equal(await login(), 200, 'unblocked: admitted (one left in the window)');
    });

    it('refuses what it cannot do: a block on a policy without a penalty, bad seconds, an unknown policy, an empty identity', async () => {
      await assert.rejects(limiter.block('api', 'dee', 60), /penalty/);
      for (const bad of [0, -1, Number.NaN, Infinity]) await assert.rejects(limiter.block('login', 'dee', bad), OptionsError);
      await assert.rejects(limiter.peek('nope', 'dee'), /unknown policy "nope"/);
      await assert.rejects(limiter.reset('api', ''), OptionsError);
    });
  });
}
