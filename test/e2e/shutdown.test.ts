import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { waitUntil } from '../../scripts/wait';
import { spawnMain, waitForExit, waitForListeners, waitForListening } from '../support/child';
import { pollStatus, runKeepAliveLoad, type Outcome } from '../support/keep-alive-load';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from '../support/postgres';
import { startRedisServer, type RedisProcess } from '../support/redis-server';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isShuttingDown = (o: Outcome) => o.status === 503 && (o.body ?? '').includes('"SERVER_SHUTTING_DOWN"');

describe('graceful shutdown of the sample API under keep-alive load (real SIGTERM)', function () {
  this.timeout(90_000);
  let schema: TestSchema;
  let redis: RedisProcess;
  let admin: Redis;
  let pgAdmin: pg.Client;

  before(async () => {
    schema = await createTestSchema('e2e_shutdown');
    redis = await startRedisServer();
    admin = new Redis(redis.port, '127.0.0.1');
    await admin.client('SETNAME', 'test-admin');
    pgAdmin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await pgAdmin.connect();
  });
  after(async () => {
    admin?.disconnect();
    await pgAdmin?.end();
    await redis?.stop();
    await schema?.drop();
  });

  async function appConnections(appName: string): Promise<{ redis: number; postgres: number }> {
    const clients = String(await admin.client('LIST'))
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.includes('name=test-admin'));
    const { rows } = await pgAdmin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [
      appName,
    ]);
    return { redis: clients.length, postgres: rows[0]?.n ?? -1 };
  }

  function start(env: Record<string, string>, appName: string) {
    return spawnMain({
      PORT: '0',
      // MODE=prod: metrics on a listener of their own, here on any free port.
      METRICS_PORT: '0',
      MODE: 'prod',
      RATE_LIMIT_BACKEND: 'redis',
      REDIS_URL: redis.url,
      RATE_LIMIT_DEFAULT_RPS: '100000',
      RATE_LIMIT_DEFAULT_BURST: '100000',
      DATABASE_URL: `${schema.url}&application_name=${appName}`,
      ...env,
    });
  }

  it('drains without a single reset: in-flight requests complete, later ones get 503, exit 0, connections closed', async () => {
    const appName = `shutdown_${randomBytes(3).toString('hex')}`;
    const delayMs = 500;
    const child = start({ SHUTDOWN_DELAY_MS: String(delayMs), SHUTDOWN_DRAIN_TIMEOUT_MS: '10000' }, appName);
    const exited = waitForExit(child, 60_000);
    const port = await waitForListening(child, 30_000);

    const live = pollStatus(port, '/health/live', 50);
    const ready = pollStatus(port, '/health/ready', 50);
    const load = runKeepAliveLoad({
      port,
      loops: [
        { path: '/v1/status', count: 40 },
        { path: '/v1/slow?ms=1500', count: 10 },
      ],
      stopAfter: isShuttingDown,
      maxMs: 20_000,
    });
    await sleep(1200); // every slow loop has a request in flight now
    const before = await appConnections(appName);
    const sigtermAt = Date.now();
    child.kill('SIGTERM');
    const outcomes = await load.done;
    const result = await exited;
    const exitedAt = Date.now();
    const liveSeen = await live.stop();
    const readySeen = await ready.stop();
    const after = await appConnections(appName);

    // Zero socket errors on the client side, on reused and new connections alike.
    const errors = outcomes.filter((o) => o.error !== undefined);
    assert.deepEqual(
      errors.map((o) => `${o.path} ${o.error} reused=${o.reusedSocket}`),
      [],
    );
    // Every answer is a real one: 200, or 503 SERVER_SHUTTING_DOWN with Retry-After and Connection: close.
    // On a machine busy enough that a decision misses its deadline or the event loop lags, a
    // request may also get the limiter's or the shedder's fast 503 with Retry-After: an answer too.
    const refusedForLoad = (o: Outcome) => o.status === 503 && /"(RATE_LIMITER_UNAVAILABLE|OVERLOADED)"/.test(o.body ?? '');
    for (const o of outcomes) {
      if (o.status === 200) continue;
      if (refusedForLoad(o)) {
        assert.ok(Number(o.headers?.['retry-after']) >= 1, `Retry-After on ${o.body}`);
        continue;
      }
      assert.ok(isShuttingDown(o), `unexpected ${o.status} ${o.body}`);
      assert.ok(Number(o.headers?.['retry-after']) >= 1, 'Retry-After');
      assert.equal(o.headers?.['connection'], 'close');
    }
    // Requests in flight at SIGTERM completed with their real response.
    const inFlightSlow = outcomes.filter((o) => o.path.startsWith('/v1/slow') && o.startedAt < sigtermAt && o.endedAt > sigtermAt);
    assert.equal(inFlightSlow.length, 10, 'each slow loop had one request in flight');
    for (const o of inFlightSlow) {
      assert.equal(o.status, 200, o.body);
      assert.deepEqual(JSON.parse(o.body ?? '{}'), { slept_ms: 1500 });
    }
    // Requests during the delay were served (with Connection: close), then the gate closed.
    const duringDelay = outcomes.filter(
      (o) => o.startedAt > sigtermAt && o.endedAt < sigtermAt + delayMs - 50 && o.path === '/v1/status' && !refusedForLoad(o),
    );
    assert.ok(duringDelay.length > 0, 'requests were served during the delay');
    for (const o of duringDelay)
      assert.ok(o.status === 200 && o.headers?.['connection'] === 'close', `during the delay: ${o.status} ${o.body}`);
    const shed = outcomes.filter(isShuttingDown);
    assert.equal(new Set(shed.map((o) => o.loop)).size, 50, 'every loop was told to go away with a 503');
    assert.ok(
      shed.every((o) => o.endedAt >= sigtermAt + delayMs),
      'no 503 before the delay was over',
    );

    // Liveness stayed 200 while the process answered; readiness turned 503 at once.
    assert.ok(
      liveSeen.some((p) => p.at > sigtermAt + delayMs && p.status === 200),
      'live answered during the drain',
    );
    assert.deepEqual(
      liveSeen.filter((p) => p.status !== undefined && p.status !== 200),
      [],
    );
    const readyAfter = readySeen.filter((p) => p.at > sigtermAt + 60 && p.status !== undefined);
    assert.ok(readyAfter.length > 0);
    assert.ok(
      readyAfter.every((p) => p.status === 503),
      JSON.stringify(readyAfter),
    );
    assert.ok(
      readySeen.some((p) => p.at < sigtermAt && p.status === 200),
      'ready before the signal',
    );

    // Clean exit within the budget, and every connection to Redis and Postgres closed.
    assert.equal(result.signal, null);
    assert.equal(result.code, 0, result.stderr);
    // Exit code 0 says the drain ended before its timeout; the time is logged.
    console.log(`      exited ${exitedAt - sigtermAt} ms after SIGTERM (SHUTDOWN_DELAY_MS ${delayMs})`);
    assert.ok(before.redis >= 1 && before.postgres >= 1, `connections before: ${JSON.stringify(before)}`);
    assert.deepEqual(after, { redis: 0, postgres: 0 });
    const report = result.stdout.split('\n').find((l) => l.includes('"shutdown complete"'));
    assert.ok(report !== undefined);
    const parsed = JSON.parse(report) as { drained: boolean; phases: { name: string; ok: boolean }[] };
    assert.equal(parsed.drained, true);
    assert.deepEqual(
      parsed.phases.map((p) => [p.name, p.ok]),
      [
        ['workers', true],
        ['redis', true],
        ['postgres', true],
        ['metrics', true],
      ],
    );
  });

  it('a drain timeout shorter than a slow request: the slow requests are cut and the exit code is 1', async () => {
    const appName = `timeout_${randomBytes(3).toString('hex')}`;
    const child = start({ SHUTDOWN_DELAY_MS: '0', SHUTDOWN_DRAIN_TIMEOUT_MS: '300' }, appName);
    const exited = waitForExit(child, 60_000);
    const port = await waitForListening(child, 30_000);
    const load = runKeepAliveLoad({
      port,
      loops: [{ path: '/v1/slow?ms=5000', count: 5 }],
      stopAfter: isShuttingDown,
      maxMs: 20_000,
    });
    await sleep(500);
    const sigtermAt = Date.now();
    child.kill('SIGTERM');
    const outcomes = await load.done;
    const result = await exited;
    assert.equal(result.code, 1, 'a timed-out drain is not a clean exit');
    const cut = outcomes.filter((o) => o.startedAt < sigtermAt);
    assert.equal(cut.length, 5);
    // What the client sees: the connection is closed under the request, no response at all.
    for (const o of cut) {
      assert.equal(o.status, undefined);
      assert.match(o.error ?? '', /ECONNRESET|socket hang up/);
      // Cut at the drain timeout (300 ms), not before; a reset with no response is not the 5 s
      // request ending by itself.
      assert.ok(o.endedAt - sigtermAt >= 250, `cut ${o.endedAt - sigtermAt} ms after SIGTERM`);
    }
    assert.match(result.stdout, /"msg":"drain timed out; closing the remaining connections"/);
    assert.deepEqual(await appConnections(appName), { redis: 0, postgres: 0 });
  });

  it('Prometheus can watch the drain: the metrics listener answers after the gate closed, with the time since the signal and the limit, and closes last', async () => {
    const child = start({ SHUTDOWN_DELAY_MS: '300', SHUTDOWN_DRAIN_TIMEOUT_MS: '10000' }, `metrics_${randomBytes(3).toString('hex')}`);
    const exited = waitForExit(child, 60_000);
    const { port, metricsPort } = await waitForListeners(child, 30_000);
    assert.notEqual(metricsPort, port, 'MODE=prod: a listener of its own');
    const gauge = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    const scrape = async () => {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { headers: { connection: 'close' } });
      return { status: res.status, text: await res.text() };
    };
    const before = await scrape();
    assert.equal(before.status, 200);
    assert.equal(gauge(before.text, 'rampart_shutdown_elapsed_seconds'), 0);
    assert.equal(gauge(before.text, 'rampart_shutdown_limit_seconds'), 10.3);
    // A slow request keeps the drain going after the gate closes: in flight before the signal.
    // (The metrics listener's own requests never enter the gate: in flight counts the app's.)
    const slow = fetch(`http://127.0.0.1:${port}/v1/slow?ms=8000`).then((r) => r.status);
    await waitUntil(
      'the slow request in flight',
      async () => gauge((await scrape()).text, 'rampart_http_requests_in_flight') >= 1,
      20_000,
      20,
    );
    child.kill('SIGTERM');
    // The gate closes after the delay: another route is refused from then on.
    const publicStatus = () => fetch(`http://127.0.0.1:${port}/v1/status`, { headers: { connection: 'close' } }).then((r) => r.status);
    await waitUntil('the gate to close', async () => (await publicStatus()) === 503, 20_000, 20);
    const during = await scrape();
    assert.equal(during.status, 200, during.text.slice(0, 200));
    assert.ok(gauge(during.text, 'rampart_shutdown_elapsed_seconds') > 0, 'the shutdown is under way');
    assert.equal(gauge(during.text, 'rampart_http_requests_in_flight'), 1, 'scraped during the drain: the slow request still in flight');
    assert.equal(await slow, 200);
    const result = await exited;
    assert.equal(result.code, 0, result.stderr);
    // Closed after the drain, as the last cleanup phase; then nothing listens there.
    const report = JSON.parse(result.stdout.split('\n').find((l) => l.includes('"shutdown complete"')) ?? '{}') as {
      phases?: { name: string; ok: boolean }[];
    };
    const last = report.phases?.at(-1);
    assert.deepEqual([last?.name, last?.ok], ['metrics', true], JSON.stringify(report.phases));
    await assert.rejects(scrape(), 'the metrics listener is closed');
  });

  it('a second SIGTERM does not restart the sequence', async () => {
    const child = start({ SHUTDOWN_DELAY_MS: '300' }, `twice_${randomBytes(3).toString('hex')}`);
    const exited = waitForExit(child, 60_000);
    await waitForListening(child, 30_000);
    child.kill('SIGTERM');
    await sleep(100);
    child.kill('SIGTERM');
    const result = await exited;
    assert.equal(result.code, 0);
    assert.equal(result.stdout.split('"msg":"shutdown started"').length - 1, 1);
    assert.equal(result.stdout.split('"msg":"shutdown complete"').length - 1, 1);
    assert.match(result.stdout, /"msg":"shutdown already in progress; signal ignored"/);
  });
});
