import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import request from 'supertest';
import {
  createMemoryStore,
  createRateLimiter,
  createRedisClient,
  createRedisStore,
  errorHandler,
  parsePolicySet,
  type PolicyOptions,
  type RateLimiter,
  type RateLimitStore,
} from '../../src';
import { TEST_REDIS_URL } from '../support/redis-server';
import { TEST_DEADLINE_MS } from '../support/deadline';
import { waitUntil } from '../../scripts/wait';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A login route (`POST /login`, 401 unless the password is "right", the username from the
 * body) and a model route (`GET /model?used=N` reserving 1,000 tokens and using N), their
 * policies settling when the response ends.
 */
function settleApp(limiter: RateLimiter) {
  const app = express();
  app.use(express.json());
  app.post('/login', limiter.limit('login_credential'), (req, res) => {
    const ok = (req.body as { password?: string }).password === 'right';
    res.status(ok ? 200 : 401).json({ ok });
  });
  app.get('/model', limiter.limit('tokens'), (req, res) => {
    (res.locals as { used?: unknown }).used = req.query['used'] === 'bad' ? 'lots' : Number(req.query['used']);
    res.json({ ok: true });
  });
  // Answers after `ms`, for a client that goes away first.
  app.post('/slow-login', limiter.limit('login_credential'), (req, res) => {
    setTimeout(() => res.status(200).json({ ok: true }), Number(req.query['ms']));
  });
  app.use(errorHandler());
  return app;
}

const POLICIES: Readonly<Record<string, PolicyOptions>> = {
  login_credential: { algorithm: 'sliding_window', limit: 3, windowSeconds: 60, key: 'credential', settle: 'failures' },
  tokens: {
    algorithm: 'token_bucket',
    rps: 0.001,
    burst: 10_000,
    cost: 1_000,
    key: 'ip',
    settle: (_req, res) => (res.locals as { used: number }).used,
  },
};

describe('reserve, then settle: costs settled when the response ends', function () {
  this.timeout(30_000);

  for (const kind of ['memory', 'redis'] as const) {
    describe(kind, () => {
      let store: RateLimitStore;
      let limiter: RateLimiter;
      let closeClient = () => Promise.resolve();
      const settleErrors: string[] = [];
      const left = async (policy: string, identity: string) => (await limiter.peek(policy, identity)).remaining;

      beforeEach(async () => {
        const client = kind === 'redis' ? createRedisClient(TEST_REDIS_URL) : undefined;
        if (client !== undefined) {
          await once(client, 'ready');
          closeClient = async () => {
            await client.quit();
          };
        }
        store = client === undefined ? createMemoryStore() : createRedisStore({ client });
        settleErrors.length = 0;
        limiter = createRateLimiter({
          deadlineMs: TEST_DEADLINE_MS,
          store,
          prefix: `settle${randomBytes(3).toString('hex')}`,
          policies: POLICIES,
          onSettleError: (err, policy) => settleErrors.push(`${policy}: ${err.message}`),
        });
      });
      afterEach(async () => {
        await limiter.close();
        await store.close();
        await closeClient();
      });

      it("settle: 'failures': only failed logins count; after 3 the right password is refused too; RateLimit says what was reserved (c=1)", async () => {
        const app = settleApp(limiter);
        const login = (password: string) => request(app).post('/login').send({ username: 'alice', password });
        for (let i = 0; i < 6; i++) {
          const ok = await login('right');
          assert.equal(ok.status, 200, `successful login ${i + 1}`);
          assert.match(String(ok.headers['ratelimit']), /^"login_credential";r=2;t=\d+;c=1$/);
        }
        await waitUntil('the settle', async () => (await left('login_credential', 'alice')) === 3, 5_000);
        for (let i = 0; i < 3; i++) assert.equal((await login('wrong')).status, 401);
        await waitUntil('the settle', async () => (await left('login_credential', 'alice')) === 0, 5_000);
        const refused = await login('right');
        assert.equal(refused.status, 429);
        assert.equal(refused.body.policy, 'login_credential');
        assert.equal(await left('login_credential', 'bob'), 3, 'another username untouched');
      });

      it('settle function: reservations of 1,000 settle to the tokens used (refund and charge); a cost it cannot give keeps the reservation', async () => {
        const app = settleApp(limiter);
        const ip = '::ffff:127.0.0.1';
        const used = [10, 250, 0, 999, 1_700];
        for (const u of used) {
          const res = await request(app).get(`/model?used=${u}`);
          assert.equal(res.status, 200);
          assert.match(String(res.headers['ratelimit']), /;c=1000$/);
        }
        const sum = used.reduce((x, y) => x + y, 0);
        await waitUntil('the settle', async () => (await left('tokens', ip)) === 10_000 - sum, 5_000);
        assert.equal((await request(app).get('/model?used=bad')).status, 200);
        await waitUntil('the settle', async () => settleErrors.length === 1, 5_000);
        assert.match(
          settleErrors[0] as string,
          /^tokens: policy "tokens": settle gave "lots", not a whole number of 0 or more; the reservation of 1000 stands$/,
        );
        assert.equal(await left('tokens', ip), 10_000 - sum - 1_000);
      });

      it("settle: 'failures': a client gone before its response keeps the reservation", async () => {
        const server = settleApp(limiter).listen(0, '127.0.0.1');
        await once(server, 'listening');
        try {
          const { port } = server.address() as AddressInfo;
          const body = JSON.stringify({ username: 'carol', password: 'right' });
          const req = http.request({
            port,
            host: '127.0.0.1',
            method: 'POST',
            path: '/slow-login?ms=400',
            headers: { 'content-type': 'application/json' },
          });
          req.on('error', () => undefined);
          req.end(body);
          await waitUntil('the settle', async () => (await left('login_credential', 'carol')) === 2, 5_000);
          req.destroy();
          await sleep(600);
          assert.equal(await left('login_credential', 'carol'), 2, 'the reservation stands');
        } finally {
          server.close();
        }
      });
    });
  }

  it('refuses settle on a concurrency policy, an unknown settle, and a store without adjust; the policies file takes only "failures"', () => {
    const store = createMemoryStore();
    assert.throws(
      () => createRateLimiter({ store, policies: { c: { algorithm: 'concurrency', limit: 2, settle: 'failures' } } }),
      /policy "c": settle is for every algorithm but concurrency/,
    );
    assert.throws(
      () =>
        createRateLimiter({
          store,
          policies: { w: { algorithm: 'sliding_window', limit: 2, windowSeconds: 1, settle: 'successes' as never } },
        }),
      /policy "w": settle.*"failures" or a function/,
    );
    const { adjust: _adjust, ...withoutAdjust } = store;
    assert.throws(
      () =>
        createRateLimiter({
          store: withoutAdjust,
          policies: { w: { algorithm: 'sliding_window', limit: 2, windowSeconds: 1, settle: 'failures' } },
        }),
      /settle needs a store with adjust\(\)/,
    );
    const parsed = parsePolicySet(
      { policies: { login: { algorithm: 'sliding_window', limit: 5, windowSeconds: 60, settle: 'failures' } } },
      {},
    );
    assert.equal(parsed.policies['login']?.settle, 'failures');
    assert.throws(
      () => parsePolicySet({ policies: { login: { algorithm: 'sliding_window', limit: 5, windowSeconds: 60, settle: 'always' } } }, {}),
      /policies\.login\.settle/,
    );
    void store.close();
  });
});
