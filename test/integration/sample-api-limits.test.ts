import assert from 'node:assert/strict';
import type { Express } from 'express';
import request from 'supertest';
import { createHealth, createMetrics, loadConfig } from '../../src';
import { createApp } from '../../src/app/create-app';
import { createDatabase, type Database } from '../../src/app/db/database';
import { migrate } from '../../src/app/db/migrations';
import { createLogger } from '../../src/app/logger';
import { createRateLimiting, type RateLimiting } from '../../src/app/rate-limiting';
import { waitUntil } from '../../scripts/redis-stack';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { startRedisServer, type RedisProcess } from '../support/redis-server';


function limitsSuite(backend: 'memory' | 'redis'): void {
  describe(`sample API rate limits (${backend} store)`, function () {
    this.timeout(60_000);
    let schema: TestSchema;
    let db: Database;
    let redis: RedisProcess | undefined;
    let limiting: RateLimiting;
    let app: Express;
    let metricsText: () => Promise<string>;

    before(async () => {
      schema = await createTestSchema('sample_limits');
      db = createDatabase({ writeUrl: schema.url, schema: schema.name, maxConnections: 4 });
      await migrate(db.write, db.schema);
      if (backend === 'redis') redis = await startRedisServer();
      const config = loadConfig({
        RATE_LIMIT_BACKEND: backend,
        ...(redis === undefined ? {} : { REDIS_URL: redis.url }),
        RATE_LIMIT_DEFAULT_RPS: '0.01',
        RATE_LIMIT_DEFAULT_BURST: '3',
        TRUST_PROXY: 'true',
      });
      const logger = createLogger('silent');
      const metrics = createMetrics({ processMetrics: false });
      metricsText = () => metrics.registry.metrics();
      limiting = createRateLimiting(config, logger, metrics);
      app = createApp({ config, db, logger, metrics, health: createHealth({ checks: [] }), version: 'test', limiter: limiting.limiter });
      // No offline queue: wait for the connection rather than a fixed time.
      if (backend === 'redis') await waitUntil('the Redis client to be ready', async () => limiting.redis?.status === 'ready', 10_000, 20);
    });
    after(async () => {
      await limiting?.close();
      await db?.close();
      await schema?.drop();
      await redis?.stop();
    });

    const from = (ip: string) => ({ 'X-Forwarded-For': ip });

    it('limits public routes per client IP (X-Forwarded-For honoured with TRUST_PROXY)', async () => {
      for (let i = 0; i < 3; i++) {
        const ok = await request(app).get('/v1/status').set(from('198.51.100.1'));
        assert.equal(ok.status, 200);
        assert.match(String(ok.headers['ratelimit']), new RegExp(`^"public";r=${2 - i};t=\\d+$`));
        assert.equal(ok.headers['ratelimit-policy'], '"public";q=3;w=300');
      }
      const limited = await request(app).get('/v1/status').set(from('198.51.100.1'));
      assert.equal(limited.status, 429);
      assert.equal(limited.body.error, 'RATE_LIMITED');
      assert.ok(Number(limited.headers['retry-after']) > 90, 'one token per 100 s');
      assert.equal((await request(app).get('/v1/status').set(from('198.51.100.2'))).status, 200, 'another client');
      assert.equal((await request(app).get('/v1/slow?ms=0').set(from('198.51.100.1'))).status, 429, 'same bucket on /v1/slow');
    });

    it('groups an IPv6 /64 into one bucket', async () => {
      for (let i = 1; i <= 3; i++) assert.equal((await request(app).get('/v1/status').set(from(`2001:db8:7:7::${i}`))).status, 200);
      assert.equal((await request(app).get('/v1/status').set(from('2001:db8:7:7:ffff::9'))).status, 429);
      assert.equal((await request(app).get('/v1/status').set(from('2001:db8:7:8::1'))).status, 200);
    });

    it('limits notes per principal, not per IP', async () => {
      const tokens: string[] = [];
      for (const [i, name] of ['nina', 'omar'].entries()) {
        const creds = { username: `${name}-${backend}`, password: 'long enough pw' };
        await request(app).post('/v1/auth/register').set(from(`203.0.113.${10 + i}`)).send(creds).expect(201);
        const login = await request(app).post('/v1/auth/login').set(from(`203.0.113.${10 + i}`)).send(creds).expect(200);
        tokens.push(login.body.token as string);
      }
      const [nina, omar] = tokens.map((t) => ({ Authorization: `Bearer ${t}`, ...from('192.0.2.200') }));
      for (let i = 0; i < 3; i++) assert.equal((await request(app).get('/v1/notes').set(nina ?? {})).status, 200);
      const limited = await request(app).get('/v1/notes').set(nina ?? {});
      assert.equal(limited.status, 429);
      assert.equal(limited.body.policy, 'authenticated');
      assert.equal((await request(app).get('/v1/notes').set(omar ?? {})).status, 200, 'same IP, other principal');
      const anonymous = await request(app).get('/v1/notes').set(from('192.0.2.200'));
      assert.equal(anonymous.status, 401, 'authentication comes first');
    });

    it('limits logins per credential across IPs, and per IP across credentials (sliding windows)', async () => {
      const victim = `victim-${backend}`;
      for (let i = 1; i <= 5; i++) {
        const res = await request(app).post('/v1/auth/login').set(from(`10.1.0.${i}`)).send({ username: victim, password: 'wrong password' });
        assert.equal(res.status, 401, `attempt ${i}`);
      }
      const sixth = await request(app).post('/v1/auth/login').set(from('10.1.0.99')).send({ username: victim, password: 'wrong password' });
      assert.equal(sixth.status, 429);
      assert.equal(sixth.body.policy, 'login_credential');
      const differentCase = await request(app).post('/v1/auth/login').set(from('10.1.0.98')).send({ username: victim.toUpperCase(), password: 'wrong password' });
      assert.equal(differentCase.status, 429, 'usernames are compared case-insensitively');

      for (let i = 1; i <= 20; i++) {
        const res = await request(app).post('/v1/auth/login').set(from('10.2.0.1')).send({ username: `spray${i}`, password: 'wrong password' });
        assert.equal(res.status, 401, `spray ${i}`);
      }
      const spray = await request(app).post('/v1/auth/login').set(from('10.2.0.1')).send({ username: 'spray21', password: 'wrong password' });
      assert.equal(spray.status, 429);
      assert.equal(spray.body.policy, 'login_ip');
    });

    it('never limits /health/live or /metrics, and counts decisions', async () => {
      for (let i = 0; i < 10; i++) {
        assert.equal((await request(app).get('/health/live').set(from('198.51.100.1'))).status, 200);
      }
      const m = await request(app).get('/metrics').set(from('198.51.100.1'));
      assert.equal(m.status, 200);
      assert.match(m.text, /rampart_rate_limit_decisions_total\{policy="public",outcome="limited"\} [1-9]/);
      assert.match(await metricsText(), /rampart_rate_limit_decisions_total\{policy="login_credential",outcome="allowed"\} [1-9]/);
      assert.ok(!m.headers['ratelimit']);
    });
  });
}

limitsSuite('memory');
limitsSuite('redis');
