import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import pg from 'pg';
import request from 'supertest';
import { startNode, sentinelConfig } from '../../scripts/redis-stack';
import { createHealth, createRateLimiter, postgresCheck, rateLimitFailure, StoreUnavailableError, type RateLimitStore } from '../../src';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from '../support/postgres';
import { freePort, startRedisServer } from '../support/redis-server';
import { startSampleChild, type SampleChild } from '../support/sample-child';
import { startTcpProxy } from '../support/tcp-proxy';

// Outages name their cause: with Redis or Postgres unreachable, readiness, the 503's detail and
// the log lines say `connect ECONNREFUSED 127.0.0.1:<port>` (the errno and the address), not
// what the client library says of the command it could not send ("Stream isn't writeable and
// enableOfflineQueue options is false", "Cluster isn't ready...", "Internal server error").
// Everything runs on real processes: the sample API as a child, redis-server, Postgres.

/** Polls `read` until `ok` holds of its value, for up to `timeoutMs` (generous: a busy machine is slow, never wrong). */
async function eventually<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | string = 'nothing read';
  for (;;) {
    try {
      const v = await read();
      if (ok(v)) return v;
      last = v;
    } catch (err) {
      last = `threw ${String(err)}`;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The sample API as a child, with every line it logs at warn or above (unbounded, unlike SampleChild.warnings). */
async function sample(env: Record<string, string>): Promise<{ child: SampleChild; lines: string[] }> {
  const child = await startSampleChild(env);
  const lines: string[] = [];
  let partial = '';
  child.child.stdout?.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) if (/"level":[456]0/.test(l)) lines.push(l);
  });
  return { child, lines };
}

interface Ready {
  readonly status: number;
  readonly body: { status?: string; error?: Record<string, string> };
}

async function ready(base: string): Promise<Ready> {
  const res = await fetch(`${base}/health/ready`);
  return { status: res.status, body: (await res.json()) as Ready['body'] };
}

/** A login: its policies fail closed, so with the limiter's store down it is a 503 RATE_LIMITER_UNAVAILABLE. */
async function login(base: string): Promise<{ status: number; body: { error?: string; detail?: string } }> {
  const res = await fetch(`${base}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'outage_cause_user', password: 'not-the-password-1' }),
  });
  return { status: res.status, body: (await res.json()) as { error?: string; detail?: string } };
}

const messageOf = (line: string, msg: string): boolean => line.includes(`"msg":"${msg}"`);

/**
 * Asserts what a Redis outage says, in the sample API started with `redisUrl`: readiness names
 * `cause` for `redis`, the login's 503 detail names it, and so do the limiter's log line ("rate
 * limiter backend failed") and the request's own log line (the 503). `secret`, the URL's
 * password, appears nowhere.
 */
async function assertRedisOutageNamed(app: { child: SampleChild; lines: string[] }, cause: RegExp, secret: string): Promise<void> {
  const { base } = app.child;
  const r = await eventually(
    'readiness naming the cause',
    () => ready(base),
    (v) => cause.test(v.body.error?.['redis'] ?? ''),
  );
  assert.equal(r.status, 503);
  assert.equal(r.body.status, 'unhealthy');

  const denied = await eventually(
    'a 503 whose detail names the cause',
    () => login(base),
    (v) => v.status === 503 && cause.test(v.body.detail ?? ''),
  );
  assert.equal(denied.body.error, 'RATE_LIMITER_UNAVAILABLE');
  assert.match(denied.body.detail ?? '', /^The rate limiter is unavailable \(.+\); try again shortly$/);

  const backendLine = await eventually(
    'the limiter log line naming the cause',
    async () => app.lines.filter((l) => messageOf(l, 'rate limiter backend failed')),
    (ls) => ls.some((l) => cause.test(l)),
  );
  assert.ok(backendLine.length > 0);
  // The request's own line: the 503 of the login, at error level, with the store's failure as `err`.
  const requestLine = await eventually(
    'the request log line naming the cause',
    async () => app.lines.filter((l) => l.includes('"url":"/v1/auth/login"') && l.includes('"statusCode":503')),
    (ls) => ls.some((l) => cause.test(JSON.stringify((JSON.parse(l) as { err?: unknown }).err ?? ''))),
  );
  assert.ok(requestLine.length > 0);

  const everything = [JSON.stringify(r.body), JSON.stringify(denied.body), ...app.child.warnings, ...app.lines, app.child.stderr()].join(
    '\n',
  );
  assert.ok(!everything.includes(secret), 'the URL password appears in no answer and no log line');
}

describe('outages name their cause (real processes)', function () {
  this.timeout(120_000);

  let schema: TestSchema;
  const apps: SampleChild[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    schema = await createTestSchema('outage_cause');
  });
  afterEach(async () => {
    for (const a of apps.splice(0)) await a.kill();
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });
  after(async () => {
    await schema?.drop();
  });

  async function start(env: Record<string, string>) {
    const app = await sample({ DATABASE_URL: schema.url, ...env });
    apps.push(app.child);
    return app;
  }

  it('standalone Redis, nothing listening: `connect ECONNREFUSED 127.0.0.1:<port>` in readiness, the 503 and the logs', async () => {
    const port = await freePort();
    const app = await start({ REDIS_URL: `redis://:s3cret-outage-pw@127.0.0.1:${port}` });
    await assertRedisOutageNamed(app, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}\\b`), 's3cret-outage-pw');
    // The client's own reporter says it too (logged from the start, at most every 5 s).
    const reporter = [...app.child.warnings, ...app.lines].filter((l) => messageOf(l, 'redis connection error'));
    assert.ok(reporter.length > 0 && reporter.every((l) => l.includes(`ECONNREFUSED 127.0.0.1:${port}`)), reporter.join('\n'));
  });

  it('a redis-server that was serving, then killed: the cause once it is gone, and nothing once it is back', async () => {
    const redis = await startRedisServer();
    cleanups.push(() => redis.stop());
    const app = await start({ REDIS_URL: redis.url });
    await eventually(
      'readiness 200 while Redis serves',
      () => ready(app.child.base),
      (v) => v.status === 200,
    );
    await redis.kill();
    await assertRedisOutageNamed(app, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${redis.port}\\b`), 'no-password-here');
    await redis.restart();
    const back = await eventually(
      'readiness 200 once Redis is back',
      () => ready(app.child.base),
      (v) => v.status === 200,
    );
    assert.equal(back.body.error, undefined);
  });

  it('Sentinel, every sentinel on a dead port: "all sentinels unreachable", naming each', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const app = await start({ REDIS_URL: `redis+sentinel://:s3cret-sentinel-pw@127.0.0.1:${a},127.0.0.1:${b}/mymaster` });
    // Both sentinels, whichever order: each named with its errno.
    const both = new RegExp(
      `all sentinels unreachable: connect ECONNREFUSED (127\\.0\\.0\\.1:${a}, 127\\.0\\.0\\.1:${b}|127\\.0\\.0\\.1:${b}, 127\\.0\\.0\\.1:${a})\\b`,
    );
    await assertRedisOutageNamed(app, both, 's3cret-sentinel-pw');
  });

  it('Sentinel answering, its master on a dead port: the master’s address', async () => {
    const masterPort = await freePort();
    const sentinelPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'rampart-outage-sentinel-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const sentinel = await startNode(sentinelPort, dir, {
      sentinel: true,
      configFile: sentinelConfig(masterPort, { masterName: 'deadmaster', downAfterMs: 60_000, failoverTimeoutMs: 60_000 }),
    });
    cleanups.push(() => sentinel.kill());
    const app = await start({ REDIS_URL: `redis+sentinel://127.0.0.1:${sentinelPort}/deadmaster` });
    await assertRedisOutageNamed(app, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${masterPort}\\b`), 'no-password-here');
  });

  it('Cluster, every startup node on a dead port: "no cluster node answered", naming each', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const app = await start({ REDIS_URL: `redis+cluster://:s3cret-cluster-pw@127.0.0.1:${a},127.0.0.1:${b}` });
    const both = new RegExp(
      `no cluster node answered: connect ECONNREFUSED (127\\.0\\.0\\.1:${a}, 127\\.0\\.0\\.1:${b}|127\\.0\\.0\\.1:${b}, 127\\.0\\.0\\.1:${a})\\b`,
    );
    await assertRedisOutageNamed(app, both, 's3cret-cluster-pw');
  });

  it('Postgres gone while serving: readiness, a 503 DATABASE_UNAVAILABLE (not a 500) and the request log line name it', async () => {
    // The sample API needs its database to start (migrations): it starts through a proxy,
    // which then stops listening, so the port refuses.
    const url = new URL(TEST_DATABASE_URL);
    const proxy = await startTcpProxy(Number(url.port || 5432), url.hostname);
    cleanups.push(() => proxy.close());
    const app = await start({ DATABASE_URL: schema.url.replace(`${url.hostname}:${url.port || 5432}`, `127.0.0.1:${proxy.port}`) });
    const { base } = app.child;
    await eventually(
      'readiness 200 while Postgres serves',
      () => ready(base),
      (v) => v.status === 200,
    );
    proxy.resetAll();
    await proxy.close();
    const cause = new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${proxy.port}\\b`);

    const r = await eventually(
      'readiness naming the cause',
      () => ready(base),
      (v) => cause.test(v.body.error?.['db'] ?? ''),
    );
    assert.equal(r.status, 503);

    const register = async () => {
      const res = await fetch(`${base}/v1/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'outage_cause_user', password: 'a-long-enough-password' }),
      });
      return {
        status: res.status,
        retryAfter: res.headers.get('retry-after'),
        body: (await res.json()) as { error?: string; detail?: string },
      };
    };
    const answer = await eventually('a 503 naming the cause', register, (v) => v.status === 503 && cause.test(v.body.detail ?? ''));
    assert.equal(answer.body.error, 'DATABASE_UNAVAILABLE');
    assert.match(answer.body.detail ?? '', /^The database is unavailable \(.+\); try again shortly$/);
    assert.equal(answer.retryAfter, '1');

    await eventually(
      'the request log line naming the cause',
      async () => app.lines.filter((l) => l.includes('"url":"/v1/auth/register"') && l.includes('"statusCode":503')),
      (ls) => ls.some((l) => cause.test(JSON.stringify((JSON.parse(l) as { err?: unknown }).err ?? ''))),
    );
  });

  it('Postgres readiness names the address even when the error does not (a name that does not resolve)', async () => {
    const pool = new pg.Pool({
      connectionString: 'postgres://u:pw-not-shown@no-such-host.invalid:5433/test',
      connectionTimeoutMillis: 5_000,
    });
    try {
      const health = createHealth({ checks: [{ name: 'db', run: postgresCheck(pool, 5_000), timeoutMs: 10_000 }], cacheMs: 0 });
      const results = await health.evaluate();
      const error = results.get('db')?.error ?? '';
      assert.match(error, /^getaddrinfo (ENOTFOUND|EAI_AGAIN) no-such-host\.invalid:5433$/);
      assert.ok(!error.includes('pw-not-shown'));
    } finally {
      await pool.end();
    }
  });
});

describe('the 503 RATE_LIMITER_UNAVAILABLE says only what the store vouched for', () => {
  /** A limiter over a store whose every decision does `fail`, behind an app that records rateLimitFailure(res). */
  function appOver(fail: () => Promise<never>) {
    const store: RateLimitStore = { name: 'scripted', decide: fail, close: () => Promise.resolve() };
    const limiter = createRateLimiter({
      store,
      policies: { strict: { algorithm: 'token_bucket', rps: 100, burst: 100, key: 'ip', failMode: 'closed' } },
      deadlineMs: 50,
      denyCache: false,
    });
    const failures: (Error | undefined)[] = [];
    const app = express();
    app.use((_req, res, next) => {
      res.on('finish', () => failures.push(rateLimitFailure(res)));
      next();
    });
    app.use(limiter.limit('strict'));
    app.get('/', (_req, res) => void res.send('ok'));
    return { app, limiter, failures };
  }

  it('a StoreUnavailableError: its cause in the detail, and rateLimitFailure(res) is that error; then the open breaker says what opened it', async () => {
    const cause = new StoreUnavailableError('connect ECONNREFUSED 10.9.9.9:6379');
    const { app, limiter, failures } = appOver(() => Promise.reject(cause));
    try {
      const first = await request(app).get('/');
      assert.equal(first.status, 503);
      assert.equal(first.body.detail, 'The rate limiter is unavailable (connect ECONNREFUSED 10.9.9.9:6379); try again shortly');
      assert.equal(failures[0], cause);
      // Failures open the breaker (5 calls at 50 %: opossum's count, not a time).
      for (let i = 0; i < 20 && limiter.breakerState !== 'OPEN'; i++) await request(app).get('/');
      assert.equal(limiter.breakerState, 'OPEN');
      const detail = (await request(app).get('/')).body.detail as string;
      assert.equal(
        detail,
        'The rate limiter is unavailable (circuit breaker open after: connect ECONNREFUSED 10.9.9.9:6379); try again shortly',
      );
    } finally {
      await limiter.close();
    }
  });

  it('any other error keeps the plain sentence (its message was not written for clients); a hung store says the deadline', async () => {
    const plain = appOver(() => Promise.reject(new Error('OOM command not allowed; internal host redis-7.internal')));
    const hung = appOver(() => new Promise<never>(() => undefined));
    try {
      const a = await request(plain.app).get('/');
      assert.equal(a.status, 503);
      assert.equal(a.body.detail, 'The rate limiter is unavailable; try again shortly');
      assert.match(plain.failures[0]?.message ?? '', /^OOM/, 'the log line still has it');
      const b = await request(hung.app).get('/');
      assert.equal(b.status, 503);
      assert.equal(b.body.detail, 'The rate limiter is unavailable (no answer within 50 ms); try again shortly');
    } finally {
      await plain.limiter.close();
      await hung.limiter.close();
    }
  });
});
