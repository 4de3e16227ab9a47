import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import request from 'supertest';
import { createHealth, createMetrics, createShutdownGate, loadConfig, REQUEST_ID_PATTERN } from '../../src';
import { createApp } from '../../src/app/app';
import { createDatabase, type Database } from '../../src/app/db/database';
import { createHttpServer } from '../../src/app/http-server';
import { migrate } from '../../src/app/db/migrations';
import { createLogger } from '../../src/app/logger';
import { createRateLimiting, type RateLimiting } from '../../src/app/rate-limiting';
import { waitUntil } from '../../scripts/wait';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { raw } from '../support/raw-http';
import { startRedisServer, type RedisProcess } from '../support/redis-server';
import { TEST_DEADLINE_ENV } from '../support/deadline';

function limitsSuite(backend: 'memory' | 'redis'): void {
  describe(`sample API rate limits (${backend} store)`, function () {
    this.timeout(60_000);
    let schema: TestSchema;
    let db: Database;
    let redis: RedisProcess | undefined;
    let limiting: RateLimiting;
    let app: Express;
    let metricsText: () => Promise<string>;
    let health: ReturnType<typeof createHealth>;

    before(async () => {
      schema = await createTestSchema('sample_limits');
      db = createDatabase({ writeUrl: schema.url, schema: schema.name, maxConnections: 4 });
      await migrate(db.write, db.schema);
      if (backend === 'redis') redis = await startRedisServer();
      const config = loadConfig({
        ...TEST_DEADLINE_ENV,
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
      health = createHealth({ checks: [] });
      app = createApp({ config, db, logger, metrics, health, version: 'test', limiter: limiting.limiter });
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
      for (let i = 1; i <= 3; i++)
        assert.equal(
          (
            await request(app)
              .get('/v1/status')
              .set(from(`2001:db8:7:7::${i}`))
          ).status,
          200,
        );
      assert.equal((await request(app).get('/v1/status').set(from('2001:db8:7:7:ffff::9'))).status, 429);
      assert.equal((await request(app).get('/v1/status').set(from('2001:db8:7:8::1'))).status, 200);
    });

    it('limits notes per principal, not per IP', async () => {
      const tokens: string[] = [];
      for (const [i, name] of ['nina', 'omar'].entries()) {
        const creds = { username: `${name}-${backend}`, password: 'long enough pw' };
        await request(app)
          .post('/v1/auth/register')
          .set(from(`203.0.113.${10 + i}`))
          .send(creds)
          .expect(201);
        const login = await request(app)
          .post('/v1/auth/login')
          .set(from(`203.0.113.${10 + i}`))
          .send(creds)
          .expect(200);
        tokens.push(login.body.token as string);
      }
      const [nina, omar] = tokens.map((t) => ({ Authorization: `Bearer ${t}`, ...from('192.0.2.200') }));
      for (let i = 0; i < 3; i++)
        assert.equal(
          (
            await request(app)
              .get('/v1/notes')
              .set(nina ?? {})
          ).status,
          200,
        );
      const limited = await request(app)
        .get('/v1/notes')
        .set(nina ?? {});
      assert.equal(limited.status, 429);
      assert.equal(limited.body.policy, 'authenticated');
      assert.equal(
        (
          await request(app)
            .get('/v1/notes')
            .set(omar ?? {})
        ).status,
        200,
        'same IP, other principal',
      );
      const anonymous = await request(app).get('/v1/notes').set(from('192.0.2.200'));
      assert.equal(anonymous.status, 401, 'authentication comes first');
    });

    it('refuses a flood of made-up bearer tokens by address before any reaches the database (auth_ip)', async () => {
      const pool = db.write as unknown as { query: (...args: unknown[]) => unknown };
      const query = pool.query;
      let lookups = 0;
      pool.query = function (this: unknown, ...args: unknown[]) {
        if (typeof args[0] === 'string' && args[0].includes('FROM sessions')) lookups++;
        return query.apply(this, args);
      };
      try {
        const statuses: number[] = [];
        for (let i = 0; i < 40; i++) {
          const token = `rmp_${randomBytes(32).toString('base64url')}`;
          const res = await request(app).get('/v1/notes').set(from('192.0.2.77')).set('Authorization', `Bearer ${token}`);
          statuses.push(res.status);
          if (res.status === 429) assert.equal(res.body.policy, 'auth_ip');
        }
        // auth_ip holds 5 × the default burst (3): 15 lookups, then refusals that cost nothing (a
        // token more may have dripped in on a slow machine: one per 20 s).
        assert.deepEqual(statuses.slice(0, 15), Array<number>(15).fill(401));
        assert.ok(statuses.filter((s) => s === 429).length >= 20, statuses.join(' '));
        assert.ok(
          statuses.every((s) => s === 401 || s === 429),
          statuses.join(' '),
        );
        assert.equal(lookups, statuses.filter((s) => s === 401).length, 'one lookup per admitted request, none per refusal');
      } finally {
        pool.query = query;
      }
    });

    it('limits logins per credential across IPs, and per IP across credentials (sliding windows)', async () => {
      const victim = `victim-${backend}`;
      for (let i = 1; i <= 5; i++) {
        const res = await request(app)
          .post('/v1/auth/login')
          .set(from(`10.1.0.${i}`))
          .send({ username: victim, password: 'wrong password' });
        assert.equal(res.status, 401, `attempt ${i}`);
      }
      const sixth = await request(app).post('/v1/auth/login').set(from('10.1.0.99')).send({ username: victim, password: 'wrong password' });
      assert.equal(sixth.status, 429);
      assert.equal(sixth.body.policy, 'login_credential');
      const differentCase = await request(app)
        .post('/v1/auth/login')
        .set(from('10.1.0.98'))
        .send({ username: victim.toUpperCase(), password: 'wrong password' });
      assert.equal(differentCase.status, 429, 'usernames are compared case-insensitively');

      for (let i = 1; i <= 20; i++) {
        const res = await request(app)
          .post('/v1/auth/login')
          .set(from('10.2.0.1'))
          .send({ username: `spray${i}`, password: 'wrong password' });
        assert.equal(res.status, 401, `spray ${i}`);
      }
      const spray = await request(app)
        .post('/v1/auth/login')
        .set(from('10.2.0.1'))
        .send({ username: 'spray21', password: 'wrong password' });
      assert.equal(spray.status, 429);
      assert.equal(spray.body.policy, 'login_ip');
    });

    it("counts only failed logins against login_credential (settle: 'failures'): 8 good logins pass, 5 wrong ones then refuse the right password", async () => {
      const creds = { username: `settler-${backend}`, password: 'long enough pw' };
      await request(app).post('/v1/auth/register').set(from('10.3.0.1')).send(creds).expect(201);
      for (let i = 1; i <= 8; i++) {
        const ok = await request(app)
          .post('/v1/auth/login')
          .set(from(`10.3.1.${i}`))
          .send(creds);
        assert.equal(ok.status, 200, `good login ${i}`);
        // Reserved at admission (c=1), given back when the 200 is sent: the limit is 5.
        assert.match(String(ok.headers['ratelimit']), /"login_credential";r=[34];t=\d+;c=1/);
      }
      for (let i = 1; i <= 5; i++) {
        const res = await request(app)
          .post('/v1/auth/login')
          .set(from(`10.3.2.${i}`))
          .send({ ...creds, password: 'wrong password' });
        assert.equal(res.status, 401, `wrong password ${i}`);
      }
      const refused = await request(app).post('/v1/auth/login').set(from('10.3.3.1')).send(creds);
      assert.equal(refused.status, 429);
      assert.equal(refused.body.policy, 'login_credential');
    });

    const remainingOf = (res: request.Response, policy: string) =>
      Number(new RegExp(`"${policy}";r=(\\d+)`).exec(String(res.headers['ratelimit']))?.[1]);

    it('limits malformed bodies like any other request: RateLimit headers on each refusal, then 429', async () => {
      const ip = from('198.51.100.60');
      const garbage: ReadonlyArray<readonly [string, () => request.Test, number, string]> = [
        [
          'not JSON',
          () => request(app).post('/v1/auth/register').set(ip).set('Content-Type', 'application/json').send('{bad'),
          400,
          'BAD_REQUEST',
        ],
        [
          'text/plain',
          () => request(app).post('/v1/auth/register').set(ip).set('Content-Type', 'text/plain').send('{bad'),
          415,
          'UNSUPPORTED_MEDIA_TYPE',
        ],
        [
          'over 64 kB',
          () =>
            request(app)
              .post('/v1/auth/register')
              .set(ip)
              .send({ username: 'u', password: 'p'.repeat(70_000) }),
          413,
          'PAYLOAD_TOO_LARGE',
        ],
      ];
      for (const [i, [what, send, status, code]] of garbage.entries()) {
        const res = await send();
        assert.equal(res.status, status, `${what}: ${res.text}`);
        assert.equal(res.body.error, code, what);
        assert.equal(remainingOf(res, 'public'), 2 - i, `${what} was not counted: ${String(res.headers['ratelimit'])}`);
      }
      for (const [what, send] of garbage) {
        const res = await send();
        assert.equal(res.status, 429, `${what} past the limit: ${res.text}`);
        assert.equal(res.body.error, 'RATE_LIMITED');
        assert.equal(res.body.policy, 'public');
      }
    });

    it('counts a malformed login body against login_ip (and, with no username to key on, login_credential per address)', async () => {
      const ip = from('10.3.0.1');
      const notJson = () => request(app).post('/v1/auth/login').set(ip).set('Content-Type', 'application/json').send('{bad');
      const textPlain = () => request(app).post('/v1/auth/login').set(ip).set('Content-Type', 'text/plain').send('username=a');
      const first = await notJson();
      assert.equal(first.status, 400);
      assert.equal(first.body.error, 'BAD_REQUEST');
      assert.equal(remainingOf(first, 'login_ip'), 19);
      const second = await textPlain();
      assert.equal(second.status, 415);
      assert.equal(remainingOf(second, 'login_ip'), 18);
      const wellFormed = await request(app)
        .post('/v1/auth/login')
        .set(ip)
        .send({ username: `garbage-${backend}`, password: 'wrong password' });
      assert.equal(wellFormed.status, 401);
      assert.equal(remainingOf(wellFormed, 'login_ip'), 17, 'the malformed bodies counted against login_ip');
      // login_credential falls back to the address for a body without a username: 5 a minute.
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await (i % 2 === 0 ? notJson() : textPlain())).status);
      assert.deepEqual(statuses, [400, 415, 400, 429]);
      const limited = await notJson();
      assert.equal(limited.status, 429);
      assert.equal(limited.body.error, 'RATE_LIMITED');
      assert.equal(limited.body.policy, 'login_credential');
      assert.ok(Number(limited.headers['retry-after']) > 0);
    });

    it("puts X-Request-Id on every kind of answer: probes, metrics, 404, 429, 503 shutting down, and the server's own 400, 417 and 431", async () => {
      const has = (what: string, headers: Readonly<Record<string, unknown>>) => {
        const id = headers['x-request-id'];
        assert.ok(typeof id === 'string' && REQUEST_ID_PATTERN.test(id), `${what} has no X-Request-Id`);
      };
      for (const path of ['/health/live', '/health/ready', '/health/started', '/metrics', '/v1/nothing-here']) {
        const res = await request(app).get(path).set(from('198.51.100.61'));
        assert.ok(res.status === 200 || res.status === 404, `${path}: ${res.status}`);
        has(path, res.headers);
      }
      let limited: request.Response | undefined;
      for (let i = 0; i < 5 && limited?.status !== 429; i++) limited = await request(app).get('/v1/status').set(from('198.51.100.62'));
      assert.equal(limited?.status, 429);
      has('429', limited?.headers ?? {});
      const tagged = await request(app).get('/v1/status').set(from('198.51.100.62')).set('X-Request-Id', 'caller-id-1');
      assert.deepEqual([tagged.status, tagged.headers['x-request-id']], [429, 'caller-id-1']);

      // The gate answers before the logger ever runs.
      const gate = createShutdownGate();
      const closing = createApp({
        config: loadConfig({ RATE_LIMIT_ENABLED: 'false' }),
        db,
        logger: createLogger('silent'),
        health,
        version: 'test',
        gate,
      });
      gate.close();
      const shutting = await request(closing).get('/v1/status');
      assert.deepEqual([shutting.status, shutting.body.error], [503, 'SERVER_SHUTTING_DOWN']);
      has('503', shutting.headers);

      // What Node answers before the app: through the production wiring.
      const server = createHttpServer(app);
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      try {
        const port = (server.address() as AddressInfo).port;
        for (const [what, bytes, status] of [
          ['431', `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
          ['400 malformed', 'GARBAGE\r\n\r\n', 400],
          ['400 no Host', 'GET /health/live HTTP/1.1\r\n\r\n', 400],
          ['417', 'GET /health/live HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n', 417],
        ] as const) {
          const res = await raw(port, bytes);
          assert.equal(res.status, status, what);
          has(what, res.headers);
        }
      } finally {
        server.closeAllConnections();
        server.close();
      }
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
