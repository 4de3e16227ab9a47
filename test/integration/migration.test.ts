import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import request from 'supertest';
import { waitUntil } from '../../scripts/wait';
import { migrationExample } from '../support/migration-example';
import { startRedisServer, type RedisProcess } from '../support/redis-server';

// docs/migrating.md's final example (express-rate-limit + rate-limit-redis, rewritten), run as
// the guide says it behaves: 100 requests per client address in any 15 minutes, the standard
// RateLimit headers and no X-RateLimit-* ones, a 429 in rampart's JSON with Retry-After, one
// Redis key per client (an IPv6 /56 counted as one client).
describe('the migration guide from express-rate-limit, its final example', function () {
  this.timeout(60_000);
  let redis: RedisProcess;
  let admin: Redis;
  before(async () => {
    redis = await startRedisServer();
    admin = new Redis(redis.port, '127.0.0.1');
  });
  after(async () => {
    admin?.disconnect();
    await redis?.stop();
  });

  it('admits 100 requests per address in the window, then 429 with Retry-After; RateLimit headers only', async () => {
    const example = migrationExample(redis.url, 'migrate');
    try {
      await waitUntil('the Redis client to be ready', async () => example.redis.status === 'ready');
      const get = (ip: string) => request(example.app).get('/things').set('x-forwarded-for', ip);
      for (let i = 0; i < 100; i++) {
        const r = await get('203.0.113.7');
        assert.equal(r.status, 200, `request ${i + 1}`);
        if (i === 0) {
          assert.match(String(r.headers['ratelimit']), /^"api";r=99;t=\d+$/);
          assert.equal(r.headers['ratelimit-policy'], '"api";q=100;w=900');
          assert.equal(r.headers['x-ratelimit-limit'], undefined);
        }
      }
      const denied = await get('203.0.113.7');
      assert.equal(denied.status, 429);
      assert.equal((denied.body as { error: string }).error, 'RATE_LIMITED');
      assert.ok(Number(denied.headers['retry-after']) >= 1);
      // Another client is not affected; two addresses in one IPv6 /56 are one client.
      assert.equal((await get('203.0.113.8')).status, 200);
      assert.equal((await get('2001:db8:0:1::1')).status, 200);
      const r = await get('2001:db8:0:2::1');
      assert.match(String(r.headers['ratelimit']), /^"api";r=98;/, 'the same /56');
      const keys = (await admin.keys('migrate:*')).sort();
      assert.equal(keys.length, 3, keys.join(' '));
    } finally {
      await example.close();
    }
  });
});
