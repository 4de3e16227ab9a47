import { performance } from 'node:perf_hooks';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import request from 'supertest';
import { waitUntil } from '../../scripts/wait';
import { migrationExample } from '../support/migration-example';
import { rlfMigrationExample } from '../support/migration-example-rlf';
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

// docs/migrating.md's rate-limiter-flexible example: `points: 10, duration: 1, blockDuration: 60`
// on node-redis, rewritten. What the guide says of it: 10 requests a second per address, the 11th
// refused, and the address then refused for 60 s even once the second has passed.
describe('the migration guide from rate-limiter-flexible, its final example (node-redis)', function () {
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

  it('admits 10 per second per address, then blocks it for 60 s (blockDuration): still refused after the window', async () => {
    const example = await rlfMigrationExample(redis.url, 'migrate-rlf');
    try {
      const get = (ip: string) => request(example.app).get('/things').set('x-forwarded-for', ip);
      // The ten fall in one window of a second whatever the machine's speed: the run is retried
      // from a fresh address if they did not (a slow second is not what is tested).
      let ip = '';
      for (let attempt = 0; attempt < 5; attempt++) {
        ip = `203.0.113.${10 + attempt}`;
        const t = performance.now();
        const statuses: number[] = [];
        for (let i = 0; i < 11; i++) statuses.push((await get(ip)).status);
        if (performance.now() - t > 900) continue;
        assert.deepEqual(statuses, [...Array<number>(10).fill(200), 429]);
        break;
      }
      const denied = await get(ip);
      assert.equal(denied.status, 429);
      assert.ok(Number(denied.headers['retry-after']) > 50, `Retry-After ${denied.headers['retry-after']} (the 60 s block)`);
      // Past the one-second window the block still holds; another address is not affected.
      await new Promise((r) => setTimeout(r, 1_100));
      assert.equal((await get(ip)).status, 429, 'blocked after the window');
      assert.equal((await get('203.0.113.99')).status, 200);
      assert.ok((await admin.keys('migrate-rlf:*')).length >= 2);
    } finally {
      await example.close();
    }
  });
});
