import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { spawnMain, waitForExit, waitForListening } from '../support/child';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { startRedisServer, type RedisProcess } from '../support/redis-server';
import { TEST_DEADLINE_ENV } from '../support/deadline';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Canaries are random, so no pattern-matching can find them: only structural redaction can.
const canary = (what: string) => `cnry${what}${randomBytes(6).toString('hex')}`;

for (const protocol of ['http/protobuf', 'http/json'] as const) {
  describe(`tracing to a real OTLP receiver (${protocol}): nothing secret leaves the process`, function () {
    this.timeout(90_000);
    let receiver: OtlpReceiver;
    let redis: RedisProcess;
    let schema: TestSchema;

    before(async () => {
      receiver = await startOtlpReceiver();
      redis = await startRedisServer();
      schema = await createTestSchema('e2e_tracing');
    });
    after(async () => {
      await receiver?.close();
      await redis?.stop();
      await schema?.drop();
    });

    it('exports spans with no canary anywhere in the raw bytes, flushes the in-flight span on SIGTERM, and correlates logs', async () => {
      const service = `svc-${randomBytes(3).toString('hex')}`;
      const c = {
        password: canary('pw'),
        cookie: canary('cookie'),
        queryToken: canary('qtoken'),
        queryKey: canary('qkey'),
        queryPlain: canary('qplain'),
        title: canary('title'),
        noteBody: canary('body'),
        // JSON.parse quotes 10 characters of its input in its message: the whole canary.
        thrown: `cnry${randomBytes(3).toString('hex')}`,
        apiKey: canary('apikey'),
        resourceSecret: canary('res'),
      };
      const child = spawnMain({
        PORT: '0',
        TRACING_ENABLED: 'true',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
        OTEL_SERVICE_NAME: service,
        OTEL_RESOURCE_ATTRIBUTES: `deployment.environment=test,auth.token=${c.resourceSecret}`,
        ...TEST_DEADLINE_ENV,
        RATE_LIMIT_BACKEND: 'redis',
        REDIS_URL: redis.url,
        DATABASE_URL: schema.url,
      });
      const exited = waitForExit(child, 60_000);
      const port = await waitForListening(child, 30_000);
      const base = `http://127.0.0.1:${port}`;

      const username = `user${randomBytes(3).toString('hex')}`;
      await request(base).post('/v1/auth/register').send({ username, password: c.password }).expect(201);
      const login = await request(base).post('/v1/auth/login').send({ username, password: c.password }).expect(200);
      const token = login.body.token as string;
      await request(base)
        .post('/v1/notes')
        .set('Authorization', `Bearer ${token}`)
        .set('Cookie', `session=${c.cookie}`)
        .send({ title: c.title, body: c.noteBody })
        .expect(201);
      await request(base).get(`/v1/status?token=${c.queryToken}&Api_Key=${c.queryKey}&q=${c.queryPlain}`).expect(200);
      await request(base).post('/v1/auth/login').set('X-API-Key', c.apiKey).send({ username, password: 'wrong-password' }).expect(401);
      const malformed = await request(base)
        .post('/v1/notes')
        .set('Authorization', `Bearer ${token}`)
        .set('Content-Type', 'application/json')
        .send(c.thrown);
      assert.equal(malformed.status, 400);
      await request(base).get('/health/ready').expect(200);

      const inFlight = request(base)
        .get('/v1/slow?ms=1200')
        .then((r) => r);
      await sleep(300);
      child.kill('SIGTERM');
      const slow = await inFlight;
      assert.equal(slow.status, 200, 'the request in flight completed');
      const result = await exited;
      assert.equal(result.code, 0, result.stderr);

      const bytes = receiver.all();
      // Positive controls: spans arrived, with what they should carry.
      assert.ok(receiver.bodies.length > 0, 'spans were exported');
      for (const marker of [
        service,
        'POST /v1/notes',
        '/v1/notes',
        'pg.query',
        'INSERT',
        'evalsha',
        'rate_limit.decision',
        'login_credential',
        'deployment.environment',
        'exception',
      ]) {
        assert.ok(bytes.includes(marker), `exported data contains ${marker}`);
      }
      assert.ok(bytes.includes('GET /v1/slow'), 'the span of the request in flight at SIGTERM was flushed');
      assert.ok(!bytes.includes('/health/ready'), 'health probes are not traced');
      // Negative: no canary, no password, no token, in any form the wire carries.
      for (const [what, value] of Object.entries({ ...c, token, tokenTail: token.slice(4) })) {
        assert.ok(!bytes.includes(value), `${what} leaked into the exported bytes`);
      }
      const report = result.stdout.split('\n').find((l) => l.includes('"shutdown complete"')) ?? '';
      assert.match(report, /"name":"tracing","ms":\d+,"ok":true/);

      // Every request log line carries the trace context.
      const requestLines = result.stdout
        .split('\n')
        .filter((l) => l.includes('"msg":"request completed"') || l.includes('"msg":"request errored"'));
      assert.ok(requestLines.length >= 7, `request log lines: ${requestLines.length}`);
      for (const line of requestLines) {
        const entry = JSON.parse(line) as { trace_id?: string; span_id?: string };
        assert.match(entry.trace_id ?? '', /^[0-9a-f]{32}$/, line.slice(0, 200));
        assert.match(entry.span_id ?? '', /^[0-9a-f]{16}$/);
      }
    });
  });
}
