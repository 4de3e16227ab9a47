import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import request from 'supertest';
import { spawnMain, waitForExit, waitForListening } from '../support/child';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { freePort, startRedisServer, type RedisProcess } from '../support/redis-server';
import { makePki, tlsServerArgs, type TestPki } from '../support/tls';
import { waitUntil } from '../../scripts/wait';
import { TEST_DEADLINE_ENV } from '../support/deadline';
import { LIMITER_ACL } from '../support/redis-acl';

const PROD = {
  MODE: 'prod',
  RATE_LIMIT_BACKEND: 'redis',
  REDIS_URL: 'redis://127.0.0.1:6379',
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
};

/** A policies file with a mistake the loader must name (a policy of zero requests). */
const POLICIES_DIR = mkdtempSync(join(tmpdir(), 'rampart-policies-'));
const BAD_POLICIES = join(POLICIES_DIR, 'bad.json');
writeFileSync(BAD_POLICIES, JSON.stringify({ policies: { public: { algorithm: 'token_bucket', rps: 0, burst: 10 } } }));

describe('the sample API process', function () {
  this.timeout(60_000);
  let schema: TestSchema;
  before(async () => {
    schema = await createTestSchema('e2e_start');
  });
  after(async () => {
    await schema?.drop();
    rmSync(POLICIES_DIR, { recursive: true, force: true });
  });

  describe('refuses to start on a bad environment', () => {
    // The tracing preload reads the tracing variables alone and never stops a process, so where
    // it has something to say of its own it says it in one line of its own, before the refusal.
    const cases: ReadonlyArray<readonly [string, Record<string, string>, string, RegExp?]> = [
      ['prod rate limiting on memory', { ...PROD, RATE_LIMIT_BACKEND: 'memory' }, 'RATE_LIMIT_BACKEND'],
      ['prod redis backend without REDIS_URL', { ...PROD, REDIS_URL: '' }, 'REDIS_URL'],
      [
        'prod tracing without endpoint',
        { ...PROD, TRACING_ENABLED: 'true' },
        'OTEL_EXPORTER_OTLP_ENDPOINT',
        /^rampart tracing: OTEL_EXPORTER_OTLP_ENDPOINT is not set: exporting to http:\/\/localhost:4318, the OTLP default\. Fix: /,
      ],
      ['prod dev fail-open', { ...PROD, RATE_LIMIT_DEV_FAIL_OPEN: 'true' }, 'RATE_LIMIT_DEV_FAIL_OPEN'],
      ['malformed RATE_LIMIT_DEFAULT_RPS', { RATE_LIMIT_DEFAULT_RPS: 'abc' }, 'RATE_LIMIT_DEFAULT_RPS'],
      ['a DATABASE_URL that does not parse', { DATABASE_URL: 'postgres//nohost' }, 'DATABASE_URL'],
      ['a REDIS_URL with two hosts', { REDIS_URL: 'redis://a:1,b:2' }, 'REDIS_URL'],
      [
        'RATE_LIMIT_BACKEND=memory with a REDIS_URL',
        { RATE_LIMIT_BACKEND: 'memory', REDIS_URL: 'redis://127.0.0.1:6379' },
        'RATE_LIMIT_BACKEND',
      ],
      ['a policies file that does not exist', { RATE_LIMIT_POLICIES_FILE: '/nonexistent/policies.json' }, 'RATE_LIMIT_POLICIES_FILE'],
      ['a policies file with a mistake', { RATE_LIMIT_POLICIES_FILE: BAD_POLICIES }, 'RATE_LIMIT_POLICIES_FILE'],
      ['a malformed LOAD_SHED_MAX_IN_FLIGHT', { LOAD_SHED_MAX_IN_FLIGHT: 'lots' }, 'LOAD_SHED_MAX_IN_FLIGHT'],
      [
        'a REDIS_TLS_CA_FILE with a plain redis:// URL',
        { REDIS_URL: 'redis://127.0.0.1:6379', REDIS_TLS_CA_FILE: BAD_POLICIES },
        'REDIS_TLS_CA_FILE',
      ],
      [
        'a REDIS_TLS_CA_FILE that does not exist',
        { REDIS_URL: 'rediss://127.0.0.1:6380', REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' },
        'REDIS_TLS_CA_FILE',
      ],
      [
        'a REDIS_TLS_CA_FILE that holds no PEM',
        { REDIS_URL: 'rediss://127.0.0.1:6380', REDIS_TLS_CA_FILE: BAD_POLICIES },
        'REDIS_TLS_CA_FILE',
      ],
    ];
    for (const [what, env, variable, preload] of cases) {
      it(`${what}: exit 78, one stderr line naming ${variable}${preload === undefined ? '' : " (after the preload's own)"}`, async () => {
        const result = await waitForExit(spawnMain({ PORT: '0', ...env }), 30_000);
        assert.equal(result.code, 78, result.stderr);
        const lines = result.stderr.trimEnd().split('\n');
        if (preload !== undefined) assert.match(lines.shift() ?? '', preload);
        assert.equal(lines.length, 1, result.stderr);
        assert.match(lines[0] ?? '', new RegExp(`^rampart: refusing to start: .*${variable}.*Fix: `));
        assert.equal(result.stdout.includes('listening'), false, 'never listened');
      });
    }
  });

  describe('a Redis user without what the limiter runs (REDIS_URL with an ACL user)', () => {
    let redis: RedisProcess;
    let admin: Redis;
    before(async () => {
      redis = await startRedisServer();
      admin = new Redis(redis.port, '127.0.0.1');
      await admin.call('ACL', 'SETUSER', 'limiter', 'reset', '>pw', ...LIMITER_ACL);
      await admin.call('ACL', 'SETUSER', 'no-zadd', 'reset', '>pw', ...LIMITER_ACL, '-zadd');
    });
    after(async () => {
      admin?.disconnect();
      await redis?.stop();
    });

    it('refuses to start, exit 78, one stderr line naming REDIS_URL, the command refused and the fix; the documented user starts', async () => {
      const url = (user: string) => `redis://${user}:pw@127.0.0.1:${redis.port}`;
      const refused = await waitForExit(spawnMain({ PORT: '0', REDIS_URL: url('no-zadd'), DATABASE_URL: schema.url }), 30_000);
      assert.equal(refused.code, 78, refused.stderr);
      const lines = refused.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, refused.stderr);
      console.log(`      ${lines[0]}`);
      assert.match(lines[0] ?? '', /^rampart: refusing to start: the Redis user of REDIS_URL .*ZADD.*Fix: /);
      assert.doesNotMatch(refused.stderr, /pw@/, 'the URL and its password are not repeated');
      assert.equal(refused.stdout.includes('listening'), false, 'never listened');
      const child = spawnMain({ ...TEST_DEADLINE_ENV, PORT: '0', REDIS_URL: url('limiter'), DATABASE_URL: schema.url });
      const exited = waitForExit(child, 30_000);
      try {
        await waitForListening(child, 25_000);
      } finally {
        child.kill('SIGTERM');
        assert.equal((await exited).code, 0);
      }
    });
  });

  describe('over TLS with a client certificate (rediss://, REDIS_TLS_*)', () => {
    let pki: TestPki;
    let redis: RedisProcess;
    let url: string;
    before(async () => {
      pki = makePki();
      const tlsPort = await freePort();
      redis = await startRedisServer(tlsServerArgs(pki, tlsPort, { authClients: 'yes' }));
      url = `rediss://127.0.0.1:${tlsPort}`;
    });
    after(async () => {
      await redis?.stop();
      pki?.remove();
    });

    it('starts, is ready and limits when the CA verifies the server and the client certificate is given', async () => {
      const child = spawnMain({
        ...TEST_DEADLINE_ENV,
        PORT: '0',
        REDIS_URL: url,
        REDIS_TLS_CA_FILE: pki.files.ca,
        REDIS_TLS_CERT_FILE: pki.files.clientCert,
        REDIS_TLS_KEY_FILE: pki.files.clientKey,
        DATABASE_URL: schema.url,
      });
      const exited = waitForExit(child, 30_000);
      try {
        const port = await waitForListening(child, 25_000);
        await waitUntil(
          'the process to be ready over TLS',
          async () => (await request(`http://127.0.0.1:${port}`).get('/health/ready')).status === 200,
          20_000,
          50,
        );
        const status = await request(`http://127.0.0.1:${port}`).get('/v1/status');
        assert.equal(status.status, 200);
        assert.ok(status.headers['ratelimit-policy'] !== undefined, 'decided by Redis over TLS');
      } finally {
        child.kill('SIGTERM');
        assert.equal((await exited).code, 0);
      }
    });

    const tlsEnv = () => ({
      REDIS_URL: url,
      REDIS_TLS_CA_FILE: pki.files.ca,
      REDIS_TLS_CERT_FILE: pki.files.clientCert,
      REDIS_TLS_KEY_FILE: pki.files.clientKey,
    });

    it('a REDIS_TLS_SERVERNAME the certificate does not give: exit 78 naming it; with REDIS_TLS_SKIP_HOSTNAME_CHECK=true it starts, saying so', async () => {
      const refused = await waitForExit(spawnMain({ PORT: '0', ...tlsEnv(), REDIS_TLS_SERVERNAME: 'wrong.example' }), 30_000);
      assert.equal(refused.code, 78, refused.stderr);
      assert.match(
        refused.stderr.trimEnd(),
        /^rampart: refusing to start: the Redis server's certificate was refused at Redis \(ERR_TLS_CERT_ALTNAME_INVALID: .*wrong\.example.*\)\. Fix: set REDIS_TLS_SERVERNAME /,
      );
      // The name the certificate gives is accepted; a wrong one with the check off starts too,
      // the certificate still verified against the CA, and the start says the check is off.
      for (const extra of [
        { REDIS_TLS_SERVERNAME: 'localhost' },
        { REDIS_TLS_SERVERNAME: 'wrong.example', REDIS_TLS_SKIP_HOSTNAME_CHECK: 'true' },
      ]) {
        const child = spawnMain({ ...TEST_DEADLINE_ENV, PORT: '0', ...tlsEnv(), ...extra, DATABASE_URL: schema.url });
        const exited = waitForExit(child, 30_000);
        let result: Awaited<typeof exited>;
        try {
          const port = await waitForListening(child, 25_000);
          await waitUntil(
            `ready over TLS with ${JSON.stringify(extra)}`,
            async () => (await request(`http://127.0.0.1:${port}`).get('/health/ready')).status === 200,
            20_000,
            50,
          );
        } finally {
          child.kill('SIGTERM');
          result = await exited;
        }
        assert.equal(result.code, 0, result.stderr);
        assert.equal(
          result.stdout.includes('REDIS_TLS_SKIP_HOSTNAME_CHECK=true: a Redis certificate is accepted whatever host it names'),
          extra.REDIS_TLS_SKIP_HOSTNAME_CHECK === 'true',
          JSON.stringify(extra),
        );
      }
      // The check off does not turn verification off: another CA is still refused.
      const otherCa = await waitForExit(
        spawnMain({ PORT: '0', ...tlsEnv(), REDIS_TLS_CA_FILE: pki.files.otherCa, REDIS_TLS_SKIP_HOSTNAME_CHECK: 'true' }),
        30_000,
      );
      assert.equal(otherCa.code, 78, otherCa.stderr);
      assert.match(otherCa.stderr, /REDIS_TLS_CA_FILE/);
    });

    it('a CA that did not sign the server certificate: exit 78, one stderr line naming REDIS_TLS_CA_FILE', async () => {
      const result = await waitForExit(
        spawnMain({
          PORT: '0',
          REDIS_URL: url,
          REDIS_TLS_CA_FILE: pki.files.otherCa,
          REDIS_TLS_CERT_FILE: pki.files.clientCert,
          REDIS_TLS_KEY_FILE: pki.files.clientKey,
        }),
        30_000,
      );
      assert.equal(result.code, 78, result.stderr);
      const lines = result.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.match(
        lines[0] ?? '',
        /^rampart: refusing to start: the Redis server's certificate was refused at Redis \(SELF_SIGNED_CERT_IN_CHAIN: .*\)\. Fix: set REDIS_TLS_CA_FILE /,
      );
      assert.equal(result.stdout.includes('listening'), false, 'never listened');
    });
  });

  it('REDIS_URL alone selects the Redis backend, in prod too (logs rateLimit: redis on start)', async () => {
    const redis = await startRedisServer();
    const child = spawnMain({ ...TEST_DEADLINE_ENV, PORT: '0', MODE: 'prod', REDIS_URL: redis.url, DATABASE_URL: schema.url });
    const exited = waitForExit(child, 30_000);
    let result: Awaited<typeof exited>;
    try {
      const port = await waitForListening(child, 25_000);
      // Served before Redis answers (closed policies are 503 until then): ready first, as a
      // load balancer would wait.
      await waitUntil(
        'the process to be ready',
        async () => (await request(`http://127.0.0.1:${port}`).get('/health/ready')).status === 200,
        20_000,
        50,
      );
      const status = await request(`http://127.0.0.1:${port}`).get('/v1/status');
      assert.equal(status.status, 200);
      assert.ok(status.headers['ratelimit-policy'] !== undefined, 'rate limited');
    } finally {
      child.kill('SIGTERM');
      result = await exited;
      await redis.stop();
    }
    assert.equal(result.code, 0, result.stderr);
    const listening = result.stdout.split('\n').find((l) => l.includes('"msg":"listening"')) ?? '';
    assert.equal((JSON.parse(listening) as { rateLimit?: string }).rateLimit, 'redis', listening);
  });

  it('ships a policies example that the process accepts', async () => {
    const child = spawnMain({ PORT: '0', RATE_LIMIT_POLICIES_FILE: 'config/policies.example.json', DATABASE_URL: schema.url });
    const exited = waitForExit(child, 30_000);
    try {
      const port = await waitForListening(child, 25_000);
      const status = await request(`http://127.0.0.1:${port}`).get('/v1/status');
      assert.equal(status.status, 200);
      assert.equal(status.headers['ratelimit-policy'], '"public";q=100;w=2', 'the surface override applies');
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal((await exited).code, 0);
  });

  for (const enabled of ['true', 'false']) {
    it(`LOAD_SHED_ENABLED=${enabled} with LOAD_SHED_MAX_IN_FLIGHT=1: ${enabled === 'true' ? '503 OVERLOADED past one request in flight, counted in /metrics' : 'no shedding'}`, async () => {
      const child = spawnMain({
        PORT: '0',
        DATABASE_URL: schema.url,
        LOAD_SHED_ENABLED: enabled,
        LOAD_SHED_MAX_IN_FLIGHT: '1',
        RATE_LIMIT_ENABLED: 'false',
      });
      const exited = waitForExit(child, 30_000);
      try {
        const base = `http://127.0.0.1:${await waitForListening(child, 25_000)}`;
        const slow = request(base)
          .get('/v1/slow?ms=1500')
          .then((r) => r);
        await new Promise((r) => setTimeout(r, 300));
        const second = await request(base).get('/v1/status');
        assert.equal((await request(base).get('/health/live')).status, 200);
        const metrics = (await request(base).get('/metrics')).text;
        if (enabled === 'true') {
          assert.equal(second.status, 503);
          assert.equal(second.body.error, 'OVERLOADED');
          assert.equal(second.headers['retry-after'], '1');
          assert.match(metrics, /^rampart_load_shed_total\{reason="in_flight"\} 1$/m);
        } else {
          assert.equal(second.status, 200);
          // nothing shed: the series read 0 (they start at 0, so their rates read 0, not nothing)
          assert.match(metrics, /^rampart_load_shed_total\{reason="in_flight"\} 0$/m);
          assert.match(metrics, /^rampart_load_shed_total\{reason="event_loop_delay"\} 0$/m);
        }
        assert.equal((await slow).status, 200);
      } finally {
        child.kill('SIGTERM');
      }
      assert.equal((await exited).code, 0);
    });
  }

  it('starts with Redis down, and fails closed policies with 503 until it is back', async () => {
    const dead = await startRedisServer();
    await dead.kill();
    const child = spawnMain({
      PORT: '0',
      MODE: 'prod',
      RATE_LIMIT_BACKEND: 'redis',
      REDIS_URL: dead.url,
      DATABASE_URL: schema.url,
    });
    const exited = waitForExit(child, 30_000);
    try {
      const port = await waitForListening(child, 25_000).catch(async (err: unknown) => {
        throw new Error(`${String(err)}\n${(await exited).stdout}`);
      });
      const base = `http://127.0.0.1:${port}`;
      assert.equal((await request(base).get('/health/live')).status, 200);
      const closed = await request(base).get('/v1/status');
      assert.equal(closed.status, 503);
      assert.equal(closed.body.error, 'RATE_LIMITER_UNAVAILABLE');
      await dead.restart();
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 200));
        status = (await request(base).get('/v1/status')).status;
      }
      assert.equal(status, 200, 'recovers by itself once Redis answers');
    } finally {
      child.kill('SIGTERM');
    }
    const result = await exited;
    await dead.stop();
    assert.equal(result.code, 0, result.stderr);
  });

  it('starts with no service configured (embedded Postgres), serves CRUD, and stops on SIGTERM', async () => {
    const child = spawnMain({ PORT: '0', LOG_LEVEL: 'info' });
    const exited = waitForExit(child, 55_000);
    try {
      const port = await waitForListening(child, 45_000);
      const base = `http://127.0.0.1:${port}`;
      const live = await request(base).get('/health/live');
      assert.equal(live.status, 200);
      assert.equal(live.body.status, 'healthy');
      const creds = { username: 'e2e-user', password: 'e2e-password' };
      assert.equal((await request(base).post('/v1/auth/register').send(creds)).status, 201);
      const token = (await request(base).post('/v1/auth/login').send(creds)).body.token as string;
      const auth = { Authorization: `Bearer ${token}` };
      const note = await request(base).post('/v1/notes').set(auth).send({ title: 'hello', body: 'world' });
      assert.equal(note.status, 201);
      const list = await request(base).get('/v1/notes').set(auth);
      assert.deepEqual(
        list.body.notes.map((n: { title: string }) => n.title),
        ['hello'],
      );
    } finally {
      child.kill('SIGTERM');
    }
    const result = await exited;
    assert.equal(result.signal, null, 'exited by itself, not killed');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /"msg":"shutdown complete"/);
  });
});
