import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type AddressInfo } from 'node:net';
import express from 'express';
import request from 'supertest';
import {
  REDIS_CLIENT_DEFAULTS,
  REDIS_STORE_DEFAULTS,
  createMemoryStore,
  createMetrics,
  createRateLimiter,
  OptionsError,
  RATE_LIMITER_DEFAULTS,
  type HeaderForm,
  type PolicyOptions,
  type RateLimiterOptions,
  type SurfaceOptions,
} from '../../../src';
import { limitedApp } from '../../support/limiter-app';

const store = createMemoryStore();
after(() => store.close());

const bucket: PolicyOptions = { algorithm: 'token_bucket', rps: 1, burst: 2 };

function throwsAtFactory(options: Partial<RateLimiterOptions>, pattern: RegExp): void {
  assert.throws(
    () => createRateLimiter({ store, policies: { p: bucket }, ...options }),
    (err: unknown) => {
      assert.ok(err instanceof TypeError);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

describe('rate limiter options', () => {
  it('pins the defaults', () => {
    assert.deepEqual(RATE_LIMITER_DEFAULTS, {
      prefix: 'rl',
      headers: 'draft-10',
      deadlineMs: 100,
      devFailOpen: false,
      denyCache: { maxKeys: 10_000, maxHoldMs: 1_000 },
      ipv6Subnet: 64,
      failMode: 'closed',
      key: 'ip',
      leaseSeconds: 30,
      fleet: { heartbeatMs: 1_000 },
      breaker: { errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeoutMs: 2000, rollingWindowMs: 10_000 },
    });
  });

  it('pins the Redis client and store defaults (the README repeats them)', () => {
    assert.deepEqual(REDIS_CLIENT_DEFAULTS, {
      autoPipelining: false,
      connectTimeoutMs: 2_000,
      reconnectMaxDelayMs: 100,
      quitTimeoutMs: 1_000,
      errorLogIntervalMs: 10_000,
    });
    assert.deepEqual(REDIS_STORE_DEFAULTS, { maxBatch: 128 });
  });

  it('refuses bad options when built, never per request', () => {
    throwsAtFactory({ metrics: {} } as Partial<RateLimiterOptions>, /the metrics option is now called observer/);
    throwsAtFactory({ policies: { p: { algorithm: 'token_bucket', rps: 0, burst: 2 } } }, /policy "p": rps must be a positive number/);
    throwsAtFactory({ policies: { p: { algorithm: 'token_bucket', rps: 1, burst: 1.5 } } }, /burst must be a positive integer/);
    throwsAtFactory({ policies: { p: { algorithm: 'sliding_window', limit: 0, windowSeconds: 1 } } }, /limit must be a positive integer/);
    throwsAtFactory({ policies: { p: { algorithm: 'leaky' } as unknown as PolicyOptions } }, /algorithm must be/);
    throwsAtFactory({ policies: { p: { algorithm: 'quota', limit: 5 } } }, /policy "p": period must be exactly one of period/);
    throwsAtFactory({ policies: { p: { algorithm: 'quota', limit: 5, period: 'day', periodSeconds: 9 } } }, /exactly one of period/);
    throwsAtFactory(
      { policies: { p: { algorithm: 'quota', limit: 5, period: 'week' as 'day' } } },
      /period must be "hour", "day" or "month"/,
    );
    throwsAtFactory({ policies: { p: { algorithm: 'quota', limit: 5, periodSeconds: 1.5 } } }, /periodSeconds must be a whole number/);
    throwsAtFactory({ policies: { p: { algorithm: 'quota', limit: 0, period: 'hour' } } }, /limit must be a positive integer/);
    throwsAtFactory(
      { policies: { p: { algorithm: 'concurrency', limit: 2, leaseSeconds: -1 } } },
      /policy "p": leaseSeconds must be a positive number/,
    );
    throwsAtFactory({ policies: { P: bucket } }, /policy name must be a match of .*, got "P"/);
    throwsAtFactory({ policies: { p: { ...bucket, failMode: 'maybe' as 'open' } } }, /failMode must be/);
    throwsAtFactory({ policies: { p: { ...bucket, key: 'cookie' as 'ip' } } }, /key must be/);
    throwsAtFactory({ deadlineMs: 0 }, /deadlineMs/);
    throwsAtFactory(
      { surfaces: [{ surface_id: 's', path: '/x', policies: ['p'] } as unknown as SurfaceOptions] },
      /surface_id, rate_limit_rps and rate_limit_burst are now surfaceId/,
    );
    assert.throws(
      () => createRateLimiter({ store, policies: { p: bucket }, deadlineMs: 1.5 }),
      (err: unknown) => {
        assert.ok(err instanceof OptionsError, 'the one error type of every factory');
        assert.equal(err.component, 'rateLimit');
        assert.equal(err.option, 'deadlineMs');
        assert.equal(err.message, 'rateLimit: deadlineMs must be a positive integer, got 1.5');
        return true;
      },
    );
    throwsAtFactory({ headers: 'draft-99' as HeaderForm }, /headers must be/);
    throwsAtFactory({ ipv6Subnet: 129 }, /ipv6Subnet/);
    throwsAtFactory({ prefix: 'a{b}' }, /prefix/);
    throwsAtFactory({ surfaces: [{ surfaceId: 's', path: '/x', policies: ['nope'] }] }, /unknown policy "nope" in surface "s"/);
    throwsAtFactory({ surfaces: [{ surfaceId: 's', path: '/x', policies: ['p'] }] }, /no surface takes the requests the others do not/);
    const rest = { surfaceId: 'rest', path: '/*', policies: ['p'] };
    throwsAtFactory({ surfaces: [{ surfaceId: 's', path: '/x', policies: [] }, rest] }, /names no policies: .*exempt: true/);
    throwsAtFactory({ surfaces: [{ surfaceId: 's', path: '/x', policies: ['p'], exempt: true }, rest] }, /is exempt and names policies/);
    throwsAtFactory({ surfaces: [{ surfaceId: 's', path: '/x*y', policies: ['p'] }, rest] }, /one "\*" at its end/);
    throwsAtFactory(
      { surfaces: [{ surfaceId: 'a', path: '/X/', policies: ['p'] }, { surfaceId: 'b', path: '/x', policies: ['p'] }, rest] },
      /surfaces "a" and "b" take the same requests/,
    );
    throwsAtFactory(
      {
        surfaces: [
          { surfaceId: 'a', path: '/v1*', policies: ['p'] },
          { surfaceId: 'b', method: 'GET', path: '/V1/notes*', policies: ['p'] },
          rest,
        ],
      },
      /surface "b" is never reached: surface "a"/,
    );
    throwsAtFactory({ surfaces: [rest, { surfaceId: 'b', path: '/b*', policies: ['p'] }] }, /surface "b" is never reached: surface "rest"/);
    const noSurfaces = createRateLimiter({ store, policies: { p: bucket } });
    assert.throws(() => noSurfaces.surfaces(), /surfaces\(\) needs the surfaces option/);
    void noSurfaces.close();
    throwsAtFactory(
      { surfaces: [{ surfaceId: 's', path: 'x', policies: ['p'] }] },
      /surface "s": path must be a path starting with "\/", got "x"/,
    );
    throwsAtFactory(
      {
        surfaces: [
          { surfaceId: 's', path: '/x', policies: ['p'] },
          { surfaceId: 's', path: '/y', policies: ['p'] },
        ],
      },
      /used twice/,
    );
    const limiter = createRateLimiter({ store, policies: { p: bucket } });
    assert.throws(() => limiter.limit('q'), /unknown policy "q"/);
    assert.throws(() => limiter.limit(), /names no policy/);
    assert.throws(() => limiter.limit('p', 'p'), /listed twice/);
    void limiter.close();
  });

  describe('headers', () => {
    async function headersFor(form: HeaderForm) {
      const limiter = createRateLimiter({
        store,
        headers: form,
        prefix: `h${String(form)}`,
        policies: { a: { algorithm: 'token_bucket', rps: 2, burst: 10 }, b: { algorithm: 'sliding_window', limit: 3, windowSeconds: 30 } },
      });
      const app = limitedApp(limiter.limit('a', 'b'));
      const res = await request(app).get('/');
      await limiter.close();
      return res.headers;
    }

    it('draft-10: one list member per policy', async () => {
      const h = await headersFor('draft-10');
      assert.equal(h['ratelimit-policy'], '"a";q=10;w=5, "b";q=3;w=30');
      assert.equal(h['ratelimit'], '"a";r=9;t=1, "b";r=2;t=30');
    });

    it('draft-7 and draft-6 describe the tightest policy', async () => {
      const h7 = await headersFor('draft-7');
      assert.equal(h7['ratelimit'], 'limit=3, remaining=2, reset=30');
      assert.equal(h7['ratelimit-policy'], '3;w=30');
      const h6 = await headersFor('draft-6');
      assert.deepEqual(
        [h6['ratelimit-limit'], h6['ratelimit-remaining'], h6['ratelimit-reset'], h6['ratelimit-policy']],
        ['3', '2', '30', '3;w=30'],
      );
    });

    it('false: none', async () => {
      const h = await headersFor(false);
      assert.equal(h['ratelimit'], undefined);
      assert.equal(h['ratelimit-policy'], undefined);
    });
  });

  describe('metrics of a denial', () => {
    it('count limited for the denying policies only, denied_by_other for the rest (also from the deny cache)', async () => {
      const metrics = createMetrics({ processMetrics: false });
      const store = createMemoryStore();
      const limiter = createRateLimiter({
        store,
        observer: metrics.rateLimit,
        policies: {
          wide: { algorithm: 'sliding_window', limit: 20, windowSeconds: 60 },
          narrow: { algorithm: 'sliding_window', limit: 2, windowSeconds: 60, key: (req) => req.get('x-user') },
        },
      });
      const app = limitedApp(limiter.limit('wide', 'narrow'));
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await request(app).get('/').set('x-user', 'u1')).status);
      assert.deepEqual(statuses, [200, 200, 429, 429]);
      const count = async (policy: string, outcome: string) =>
        (await metrics.rateLimit.decisions.get()).values.find((v) => v.labels['policy'] === policy && v.labels['outcome'] === outcome)
          ?.value ?? 0;
      assert.equal(await count('narrow', 'limited'), 2);
      assert.equal(await count('wide', 'limited'), 0);
      assert.equal(await count('wide', 'denied_by_other'), 2);
      assert.equal(await count('wide', 'allowed'), 2);
      await limiter.close();
      await store.close();
    });
  });

  describe('cost per request', () => {
    it('charges the cost, counts RateLimit remaining in cost units, names the policy that could not pay, and takes nothing on a denial', async () => {
      const limiter = createRateLimiter({
        store: createMemoryStore(),
        policies: {
          upload: { algorithm: 'token_bucket', rps: 1 / 3600, burst: 10, cost: (req) => Number(req.get('x-cost') ?? 1) },
          calls: { algorithm: 'sliding_window', limit: 100, windowSeconds: 3600 },
        },
      });
      const app = limitedApp(limiter.limit('upload', 'calls'), { method: 'post', path: '/upload' });
      const send = (cost: string) => request(app).post('/upload').set('x-cost', cost);
      let r = await send('7');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['ratelimit']), /"upload";r=3;t=\d+, "calls";r=99;/);
      r = await send('4');
      assert.equal(r.status, 429);
      assert.equal(r.body.policy, 'upload', 'upload had 3 left for a cost of 4: it denied, not calls');
      assert.match(String(r.headers['ratelimit']), /"upload";r=3;/);
      // Not remembered for every cost: a request that fits goes through at once.
      r = await send('3');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['ratelimit']), /"upload";r=0;t=\d+, "calls";r=98;/);
      // A cost function gone wrong is the app's bug: 500 by the error handler, never a decision.
      for (const bad of ['0', '1.5', '11', 'x']) assert.equal((await send(bad)).status, 500, bad);
      await limiter.close();
    });

    it('refuses a fixed cost the bucket cannot hold, when built', () => {
      throwsAtFactory(
        { policies: { p: { ...bucket, cost: 3 } } },
        /policy "p": cost must be a positive integer no larger than 2 \(the bucket\)/,
      );
      throwsAtFactory({ policies: { p: { ...bucket, cost: 0 } } }, /cost must be/);
    });
  });

  describe('shadow mode', () => {
    it('a shadow policy decides and counts but never refuses; the enforced ones are still charged; headers show the enforced ones only', async () => {
      const metrics = createMetrics({ processMetrics: false });
      const told: string[][] = [];
      const store = createMemoryStore();
      const policies = {
        enforced: { algorithm: 'token_bucket', rps: 1 / 3600, burst: 4 },
        trial: { algorithm: 'token_bucket', rps: 1 / 3600, burst: 1, mode: 'shadow' },
      } as const;
      const limiter = createRateLimiter({
        store,
        observer: metrics.rateLimit,
        policies,
        onShadowLimited: (names) => told.push([...names]),
      });
      const app = limitedApp(limiter.limit('enforced', 'trial'), { path: '/x' });
      const seen: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await request(app).get('/x');
        seen.push(`${r.status} ${String(r.headers['ratelimit'])}`);
      }
      assert.deepEqual(
        seen.map((s) => s.replace(/;t=\d+/, '')),
        ['200 "enforced";r=3', '200 "enforced";r=2', '200 "enforced";r=1', '200 "enforced";r=0', '429 "enforced";r=0'],
        'trial would have refused from the 2nd request on; enforced was charged every time and refused the 5th',
      );
      assert.deepEqual(told, [['trial'], ['trial'], ['trial']]);
      const text = await metrics.registry.metrics();
      assert.match(text, /policy="trial",outcome="shadow_limited"\} 3/);
      assert.match(text, /policy="enforced",outcome="allowed"\} 4/);
      await limiter.close();

      // Switching trial to enforce takes effect at once, on the state shadow mode built up.
      const enforcing = createRateLimiter({ store, policies: { trial: { ...policies.trial, mode: 'enforce' } } });
      const app2 = limitedApp(enforcing.limit('trial'), { path: '/x' });
      assert.equal((await request(app2).get('/x')).status, 429);
      await enforcing.close();
    });

    it('shadow: true puts every policy in shadow mode (no headers, never 429)', async () => {
      const limiter = createRateLimiter({ store: createMemoryStore(), shadow: true, policies: { p: bucket } });
      const app = limitedApp(limiter.limit('p'), { path: '/x' });
      for (let i = 0; i < 4; i++) {
        const r = await request(app).get('/x');
        assert.equal(r.status, 200);
        assert.equal(r.headers['ratelimit'], undefined);
      }
      throwsAtFactory({ policies: { p: { ...bucket, mode: 'dry' as 'shadow' } } }, /policy "p": mode must be "enforce" or "shadow"/);
      await limiter.close();
    });
  });

  describe('allow lists', () => {
    it('an address, a range or an identity skips its policy (outcome="skipped"); the other policies still decide, and their headers alone are sent', async () => {
      const metrics = createMetrics({ processMetrics: false });
      const limiter = createRateLimiter({
        store: createMemoryStore(),
        observer: metrics.rateLimit,
        principal: (req) => req.get('x-user'),
        policies: {
          per_ip: { algorithm: 'token_bucket', rps: 1 / 3600, burst: 1, allow: ['10.0.0.0/8', '::1'] },
          per_user: { algorithm: 'token_bucket', rps: 1 / 3600, burst: 1, key: 'principal', allow: ['health-checker'] },
        },
      });
      const app = limitedApp(limiter.limit('per_ip', 'per_user'), { path: '/x', trustProxy: true });
      const get = (ip: string, user: string) => request(app).get('/x').set('x-forwarded-for', ip).set('x-user', user);
      // 10.1.2.3 skips per_ip: only per_user decides, and only it is in the header.
      let r = await get('10.1.2.3', 'alice');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['ratelimit']), /^"per_user";r=0;t=\d+$/);
      assert.equal((await get('10.1.2.4', 'alice')).status, 429, 'alice is still limited by per_user');
      // The listed identity skips per_user; from a listed range it skips both: no decision at all.
      for (let i = 0; i < 3; i++) {
        r = await get('10.9.9.9', 'health-checker');
        assert.equal(r.status, 200);
        assert.equal(r.headers['ratelimit'], undefined);
      }
      // Outside the ranges, per_ip applies (its one token, then 429).
      assert.equal((await get('192.0.2.1', 'health-checker')).status, 200);
      assert.equal((await get('192.0.2.1', 'health-checker')).status, 429);
      const text = await metrics.registry.metrics();
      assert.match(text, /rampart_rate_limit_decisions_total\{policy="per_ip",outcome="skipped"\} 5/);
      assert.match(text, /rampart_rate_limit_decisions_total\{policy="per_user",outcome="skipped"\} 5/);
      await limiter.close();
    });

    it('refuses an allow list that is not a list of non-empty strings', () => {
      throwsAtFactory({ policies: { p: { ...bucket, allow: [''] } } }, /policy "p": allow must be a list/);
      throwsAtFactory({ policies: { p: { ...bucket, allow: 'x' as unknown as string[] } } }, /allow must be/);
    });
  });

  describe('surfaces', () => {
    it('matches method and exact path or prefix; overrides make the bucket the surface’s own', async () => {
      const limiter = createRateLimiter({
        store,
        prefix: 'surf',
        policies: { p: { algorithm: 'token_bucket', rps: 0.01, burst: 1 } },
        surfaces: [
          { surfaceId: 'one', method: 'GET', path: '/one', policies: ['p'] },
          { surfaceId: 'many', path: '/many*', policies: ['p'], rateLimitBurst: 3 },
          { surfaceId: 'rest', path: '/*', policies: [], exempt: true },
        ],
      });
      const app = express();
      app.use(limiter.surfaces());
      app.use((_req, res) => res.end('ok'));
      assert.equal((await request(app).get('/one')).status, 200);
      assert.equal((await request(app).get('/one')).status, 429);
      assert.equal((await request(app).head('/one')).status, 429, 'HEAD is GET');
      assert.equal((await request(app).post('/one')).status, 200, 'other methods are not this surface');
      for (let i = 0; i < 3; i++) assert.equal((await request(app).put(`/many/${i}`)).status, 200, `many ${i}`);
      assert.equal((await request(app).get('/many')).status, 429);
      assert.equal((await request(app).get('/elsewhere')).status, 200);
      await limiter.close();
    });

    /** A limiter of one-request buckets over surfaces `/one` (GET), `/many*` and a catch-all, and an app with these router settings. */
    function routed(settings: { sensitive?: boolean; strict?: boolean }, prefix: string) {
      const limiter = createRateLimiter({
        store,
        prefix,
        policies: { one: { algorithm: 'token_bucket', rps: 0.001, burst: 1 }, rest: { algorithm: 'token_bucket', rps: 0.001, burst: 1 } },
        surfaces: [
          { surfaceId: 'one', method: 'GET', path: '/one', policies: ['one'] },
          { surfaceId: 'probe', method: 'GET', path: '/probe', policies: [], exempt: true },
          { surfaceId: 'rest', path: '/*', policies: ['rest'] },
        ],
      });
      const app = express();
      if (settings.sensitive === true) app.enable('case sensitive routing');
      if (settings.strict === true) app.enable('strict routing');
      app.use(limiter.surfaces());
      const policyOf = (res: express.Response) => String(res.getHeader('RateLimit-Policy') ?? 'none').split(';')[0];
      app.get('/one', (_req, res) => res.json({ policy: policyOf(res) }));
      app.get('/probe', (_req, res) => res.json({ policy: policyOf(res) }));
      app.use((_req, res) => res.status(404).json({ policy: policyOf(res) }));
      return { limiter, app };
    }

    it('matches a path as the app’s router does: letter case, one trailing slash, absolute form, HEAD', async () => {
      const { limiter, app } = routed({}, 'route1');
      const one = await request(app).get('/one');
      assert.equal(one.status, 200);
      assert.equal(one.body.policy, '"one"');
      // Every spelling the router serves with the same handler is the same surface: refused now.
      for (const path of ['/ONE', '/One/', '/one/', '/oNe'])
        assert.equal((await request(app).get(path)).status, 429, `GET ${path} is surface "one"`);
      assert.equal((await request(app).head('/ONE/')).status, 429, 'HEAD /ONE/ is surface "one"');
      const absolute = await rawRequest(app, 'GET http://example.test/One/ HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n');
      assert.match(absolute, /^HTTP\/1\.1 429/, 'absolute form is surface "one"');
      // A path no surface names is charged to the catch-all; the exempt path is not charged.
      const other = await request(app).get('/nowhere');
      assert.equal(other.status, 404);
      assert.equal(other.body.policy, '"rest"');
      assert.equal((await request(app).get('/NOWHERE/')).status, 429);
      // A target that is no path at all is the catch-all's too (its bucket is spent by now).
      assert.match(await rawRequest(app, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 429/);
      for (let i = 0; i < 3; i++) assert.equal((await request(app).get('/probe')).body.policy, 'none');
      await limiter.close();
    });

    it('honours case sensitive routing and strict routing: a path the router tells apart is another surface', async () => {
      const { limiter, app } = routed({ sensitive: true, strict: true }, 'route2');
      assert.equal((await request(app).get('/one')).status, 200);
      assert.equal((await request(app).get('/one')).status, 429);
      // Not served by the /one route under these settings: not surface "one" either (the catch-all charges it).
      const upper = await request(app).get('/ONE');
      assert.equal(upper.status, 404);
      assert.equal(upper.body.policy, '"rest"');
      assert.equal((await request(app).get('/one/')).status, 429, 'the catch-all bucket is spent');
      await limiter.close();
    });
  });
});

/** Sends raw bytes to the app on a fresh server; the whole answer. */
async function rawRequest(app: express.Express, bytes: string): Promise<string> {
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  try {
    const socket = connect(port, '127.0.0.1');
    socket.write(bytes);
    let out = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (out += d));
    await once(socket, 'close');
    return out;
  } finally {
    server.close();
  }
}
