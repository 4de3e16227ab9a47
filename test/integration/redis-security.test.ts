// What the README's security notes promise about Redis, checked on real servers: the limiter
// works under an ACL user limited to the commands and key pattern the README lists (and that
// user really is limited), and over TLS with certificate verification and no plain-text fallback.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import express from 'express';
import { Redis, type Cluster } from 'ioredis';
import request from 'supertest';
import {
  closeRedisClient,
  createRateLimiter,
  createRedisClient,
  createRedisStore,
  redisAccessProblem,
  redisCheck,
  type RateLimiter,
} from '../../src';
import { SCRIPT_COMMANDS } from '../../src/limit/redis/lua/probe';
import { STORE_CLIENTS } from '../support/store-clients';
import { waitUntil } from '../../scripts/wait';
import { LIMITER_ACL } from '../support/redis-acl';
import { freePort, startRedisServer, type RedisProcess } from '../support/redis-server';
import { TEST_DEADLINE_MS } from '../support/deadline';
import { makePki, type TestPki } from '../support/tls';

/** Resolves once `client` is connected and ready. */
const waitReady = (client: Redis | Cluster, timeoutMs = 5000) =>
  waitUntil('the Redis client to be ready', async () => client.status === 'ready', timeoutMs, 20);

function limitedApp(limiter: RateLimiter) {
  const app = express();
  app.get('/tb', limiter.limit('tb'), (_req, res) => res.json({ ok: true }));
  app.get('/sw', limiter.limit('sw'), (_req, res) => res.json({ ok: true }));
  app.get('/both', limiter.limit('tb', 'sw'), (_req, res) => res.json({ ok: true }));
  app.get('/more', limiter.limit('q', 'c', 'pen'), (_req, res) => res.json({ ok: true }));
  return app;
}

function limiterOn(client: Redis | Cluster): RateLimiter {
  return createRateLimiter({
    deadlineMs: TEST_DEADLINE_MS,
    store: createRedisStore({ client }),
    prefix: 'rl',
    denyCache: false,
    policies: {
      tb: { algorithm: 'token_bucket', rps: 0.001, burst: 2, key: 'ip', failMode: 'closed' },
      sw: { algorithm: 'sliding_window', limit: 2, windowSeconds: 60, key: 'ip', failMode: 'closed' },
      // What the other kinds run: SET PXAT (quota), ZREM (a lease's release), INCR and PTTL (a
      // penalty's strikes and block), GET of an override.
      q: { algorithm: 'quota', limit: 100, period: 'day', key: 'ip', failMode: 'closed', overrides: true },
      c: { algorithm: 'concurrency', limit: 5, key: 'ip', failMode: 'closed' },
      pen: {
        algorithm: 'token_bucket',
        rps: 0.001,
        burst: 1,
        key: 'ip',
        failMode: 'closed',
        penalty: { denials: 2, withinSeconds: 60, blockSeconds: 60 },
      },
    },
  });
}

describe('Redis security: the documented ACL and TLS', function () {
  this.timeout(60_000);

  describe('ACL user with only the documented commands and key pattern', () => {
    let redis: RedisProcess;
    let admin: Redis;
    before(async () => {
      redis = await startRedisServer();
      admin = new Redis(redis.port, '127.0.0.1');
      await admin.call('ACL', 'SETUSER', 'limiter', 'reset', '>limiter-pass', ...LIMITER_ACL);
    });
    after(async () => {
      admin?.disconnect();
      await redis?.stop();
    });

    it('decides token buckets, sliding windows and both together, and passes the readiness check', async () => {
      const client = createRedisClient(`redis://limiter:limiter-pass@127.0.0.1:${redis.port}`);
      const limiter = limiterOn(client);
      try {
        await waitReady(client);
        const app = limitedApp(limiter);
        const statuses = async (path: string) => {
          const out: number[] = [];
          for (let i = 0; i < 3; i++) out.push((await request(app).get(path)).status);
          return out;
        };
        assert.deepEqual(await statuses('/tb'), [200, 200, 429]);
        assert.deepEqual(await statuses('/sw'), [200, 200, 429]);
        assert.equal((await request(app).get('/both')).status, 429);
        await limiter.setOverride('q', '::ffff:127.0.0.1', { limit: 50 });
        const more: unknown[] = [];
        for (let i = 0; i < 4; i++) {
          const r = await request(app).get('/more');
          more.push([r.status, r.body.blocked ?? false]);
        }
        assert.deepEqual(
          more,
          [
            [200, false],
            [429, false],
            [429, true],
            [429, true],
          ],
          'admitted, refused, blocked, blocked',
        );
        await limiter.clearOverride('q', '::ffff:127.0.0.1');
        await redisCheck(client)();
        const keys = (await admin.keys('*')).sort();
        assert.ok(keys.length >= 2 && keys.every((k) => k.startsWith('rl:')), keys.join(','));
      } finally {
        await limiter.close();
        await closeRedisClient(client);
      }
    });

    it('redisAccessProblem: nothing to say of the documented user, and nothing left in Redis', async () => {
      const client = new Redis({ port: redis.port, host: '127.0.0.1', username: 'limiter', password: 'limiter-pass' });
      try {
        const before = (await admin.keys('*')).length;
        assert.equal(await redisAccessProblem(client), undefined);
        assert.equal(await redisAccessProblem(client, { prefix: 'rl:tenant-a' }), undefined);
        assert.deepEqual(await admin.keys('*rampart-probe*'), []);
        assert.equal((await admin.keys('*')).length, before);
      } finally {
        client.disconnect();
      }
    });

    // Every command the scripts run (the probe's list, which a unit test pins to the scripts),
    // EVALSHA and EVAL: a user without exactly that one is named by the probe, on every client.
    for (const missing of ['evalsha', 'eval', ...Object.keys(SCRIPT_COMMANDS).map((k) => k.toLowerCase())]) {
      it(`redisAccessProblem names a user without ${missing.toUpperCase()}`, async () => {
        await admin.call('ACL', 'SETUSER', `no-${missing}`, 'reset', '>pw', ...LIMITER_ACL, `-${missing}`);
        // A cached script needs no EVAL: the cache is emptied so that EVAL is asked for.
        await admin.script('FLUSH');
        for (const [label, open] of STORE_CLIENTS) {
          const opened = await open('127.0.0.1', redis.port, { username: `no-${missing}`, password: 'pw' });
          try {
            const problem = await redisAccessProblem(opened.client);
            assert.match(String(problem), new RegExp(`NOPERM.*\\b${missing}\\b`, 'i'), `${label}: ${problem}`);
          } finally {
            await opened.close();
          }
        }
        // Nothing left; without DEL, keys that expire within 10 s.
        const left = await admin.keys('*rampart-probe*');
        if (missing !== 'del') assert.deepEqual(left, []);
        for (const k of left) assert.ok((await admin.pttl(k)) > 0 && (await admin.pttl(k)) <= 10_000, k);
        if (left.length > 0) await admin.del(...left);
      });
    }

    it('redisAccessProblem names a prefix outside the key patterns of the user', async () => {
      const client = new Redis({ port: redis.port, host: '127.0.0.1', username: 'limiter', password: 'limiter-pass' });
      try {
        assert.match(String(await redisAccessProblem(client, { prefix: 'ratelimit' })), /NOPERM.*key/i);
      } finally {
        client.disconnect();
      }
    });

    it('the user really is limited: other commands and other keys are refused', async () => {
      const c = new Redis({ port: redis.port, host: '127.0.0.1', username: 'limiter', password: 'limiter-pass' });
      try {
        await assert.rejects(c.set('other:key', '1'), /NOPERM/);
        await assert.rejects(c.call('FLUSHALL'), /NOPERM/);
        await assert.rejects(c.call('KEYS', '*'), /NOPERM/);
        await assert.rejects(c.call('CONFIG', 'GET', '*'), /NOPERM/);
        await assert.rejects(c.eval("return redis.call('SET', KEYS[1], 1)", 1, 'other:key'), /NOPERM|No permissions/);
        assert.equal(await c.set('rl:probe', '1'), 'OK');
      } finally {
        c.disconnect();
      }
    });
  });

  describe('TLS (rediss://) with a private CA', () => {
    let pki: TestPki;
    let port: number;
    let server: ChildProcess;
    let ca: Buffer;

    before(async () => {
      pki = makePki();
      ca = pki.ca;
      port = await freePort();
      server = spawn(
        'redis-server',
        [
          '--port',
          '0',
          '--tls-port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          pki.dir,
          '--tls-cert-file',
          pki.files.serverCert,
          '--tls-key-file',
          pki.files.serverKey,
          '--tls-ca-cert-file',
          pki.files.ca,
          '--tls-auth-clients',
          'no',
        ],
        { stdio: 'ignore' },
      );
      const probe = createRedisClient(`rediss://127.0.0.1:${port}`, { tls: { ca } });
      try {
        await waitReady(probe, 10_000);
      } finally {
        probe.disconnect();
      }
    });
    after(async () => {
      if (server !== undefined && server.exitCode === null) {
        const gone = new Promise((r) => server.once('exit', r));
        server.kill('SIGTERM');
        await gone;
      }
      pki?.remove();
    });

    it("decides over TLS when the server's certificate verifies", async () => {
      const client = createRedisClient(`rediss://127.0.0.1:${port}`, { tls: { ca } });
      const limiter = limiterOn(client);
      try {
        await waitReady(client);
        const app = limitedApp(limiter);
        assert.equal((await request(app).get('/tb')).status, 200);
        assert.equal((await request(app).get('/tb')).status, 200);
        assert.equal((await request(app).get('/tb')).status, 429);
      } finally {
        await limiter.close();
        await closeRedisClient(client);
      }
    });

    it('an unverifiable certificate is never used: the policy answers by its fail mode', async () => {
      const client = createRedisClient(`rediss://127.0.0.1:${port}`);
      const limiter = limiterOn(client);
      try {
        await new Promise((r) => setTimeout(r, 500));
        assert.notEqual(client.status, 'ready');
        const res = await request(limitedApp(limiter)).get('/tb');
        assert.equal(res.status, 503);
        assert.equal(res.body.error, 'RATE_LIMITER_UNAVAILABLE');
      } finally {
        await limiter.close();
        client.disconnect();
      }
    });

    it('plain redis:// to the TLS port gets no answer: fail mode, not a plain-text session', async () => {
      const client = createRedisClient(`redis://127.0.0.1:${port}`);
      const limiter = limiterOn(client);
      try {
        await new Promise((r) => setTimeout(r, 500));
        assert.notEqual(client.status, 'ready');
        assert.equal((await request(limitedApp(limiter)).get('/tb')).status, 503);
      } finally {
        await limiter.close();
        client.disconnect();
      }
    });
  });
});
