import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { CONFIG_DEFAULTS } from '../../src';
import { spawnMain, waitForExit, waitForListeners } from '../support/child';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { startRedisServer, type RedisProcess } from '../support/redis-server';
import { TEST_DEADLINE_ENV } from '../support/deadline';

/** A server holding `port` (0: any) on every interface, as the metrics listener binds by default. */
function hold(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, () => resolve(s));
  });
}
const release = (s: Server) => new Promise<void>((resolve) => s.close(() => resolve()));
const portOf = (s: Server) => (s.address() as { port: number }).port;

async function get(url: string): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(url, { headers: { connection: 'close' } });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

describe('the sample API serves /metrics on a listener of its own (METRICS_PORT, METRICS_HOST)', function () {
  this.timeout(60_000);
  let schema: TestSchema;
  let redis: RedisProcess;
  let prod: Record<string, string>;

  before(async () => {
    schema = await createTestSchema('e2e_metrics');
    redis = await startRedisServer();
    prod = { ...TEST_DEADLINE_ENV, MODE: 'prod', REDIS_URL: redis.url, DATABASE_URL: schema.url };
  });
  after(async () => {
    await redis?.stop();
    await schema?.drop();
  });

  /** Starts the child, hands it to `use` once it listens, then stops it and checks it exited 0. */
  async function withChild(
    env: Record<string, string>,
    use: (ports: { port: number; metricsPort: number }, stdout: () => string) => Promise<void>,
  ) {
    const child = spawnMain({ PORT: '0', ...env });
    let stdout = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = waitForExit(child, 50_000);
    try {
      await use(await waitForListeners(child, 30_000), () => stdout);
    } finally {
      child.kill('SIGTERM');
    }
    const result = await exited;
    assert.equal(result.code, 0, result.stderr);
  }

  async function assertSplit(port: number, metricsPort: number, host = '127.0.0.1'): Promise<void> {
    assert.notEqual(metricsPort, port);
    // The public port: /metrics is our 404, the probes are there.
    const hidden = await get(`http://127.0.0.1:${port}/metrics`);
    assert.equal(hidden.status, 404);
    assert.match(hidden.type ?? '', /^application\/json/);
    assert.deepEqual(JSON.parse(hidden.text), { error: 'NOT_FOUND', detail: 'No route for GET /metrics' });
    assert.equal((await get(`http://127.0.0.1:${port}/health/live`)).status, 200);
    // The metrics listener: /metrics in the Prometheus format, and nothing else.
    const scraped = await get(`http://${host}:${metricsPort}/metrics`);
    assert.equal(scraped.status, 200);
    assert.match(scraped.type ?? '', /^text\/plain/);
    assert.match(scraped.text, /^rampart_shutdown_limit_seconds \S+$/m);
    assert.match(scraped.text, /^rampart_rate_limit_decisions_total\{/m);
    for (const path of ['/health/live', '/v1/status', '/metrics/extra']) {
      const other = await get(`http://${host}:${metricsPort}${path}`);
      assert.equal(other.status, 404, path);
      assert.equal((JSON.parse(other.text) as { error: string }).error, 'NOT_FOUND', path);
    }
  }

  it('MODE=prod by default: the public port answers /metrics with our 404, the metrics listener (9464) with rampart_ metrics', async function () {
    // The default port itself: taken here by something else, this test cannot run (the refusal
    // it would meet is the next test's).
    const probe = await hold(CONFIG_DEFAULTS.METRICS_PORT).catch(() => undefined);
    if (probe === undefined) this.skip();
    await release(probe);
    await withChild(prod, async ({ port, metricsPort }) => {
      assert.equal(metricsPort, 9464);
      // Traffic first, so that the decision series have a sample.
      assert.equal((await get(`http://127.0.0.1:${port}/v1/status`)).status, 200);
      await assertSplit(port, metricsPort);
    });
  });

  it('METRICS_PORT=0 and METRICS_HOST=127.0.0.1: bound to that address, logged where it listens', async () => {
    await withChild({ ...prod, METRICS_PORT: '0', METRICS_HOST: '127.0.0.1' }, async ({ port, metricsPort }, stdout) => {
      assert.equal((await get(`http://127.0.0.1:${port}/v1/status`)).status, 200);
      await assertSplit(port, metricsPort);
      const listening = JSON.parse(
        stdout()
          .split('\n')
          .find((l) => l.includes('"msg":"listening"')) ?? '{}',
      ) as Record<string, unknown>;
      assert.equal(listening['metricsAddress'], '127.0.0.1');
    });
  });

  it('MODE=prod with METRICS_PORT=public: /metrics on the public port, with a warning', async () => {
    await withChild({ ...prod, METRICS_PORT: 'public' }, async ({ port, metricsPort }, stdout) => {
      assert.equal(metricsPort, port);
      const scraped = await get(`http://127.0.0.1:${port}/metrics`);
      assert.equal(scraped.status, 200);
      assert.match(scraped.text, /^rampart_shutdown_limit_seconds /m);
      assert.match(stdout(), /"level":40,.*"msg":"METRICS_PORT=public: \/metrics is served on the public port/);
    });
  });

  it('MODE=dev by default: /metrics on the public port', async () => {
    await withChild({ DATABASE_URL: schema.url, RATE_LIMIT_ENABLED: 'false' }, async ({ port, metricsPort }) => {
      assert.equal(metricsPort, port);
      assert.equal((await get(`http://127.0.0.1:${port}/metrics`)).status, 200);
    });
  });

  describe('refuses to start, exit 78, one stderr line naming the variable and the fix, never listening', () => {
    async function refused(env: Record<string, string>, variable: string, detail: RegExp): Promise<void> {
      const result = await waitForExit(spawnMain({ PORT: '0', ...env }), 40_000);
      assert.equal(result.code, 78, `${result.signal ?? ''} ${result.stderr}`);
      const lines = result.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0] ?? '', new RegExp(`^rampart: refusing to start: ${variable}.*Fix: `));
      assert.match(lines[0] ?? '', detail);
      assert.equal(result.stdout.includes('"msg":"listening"'), false, 'never listened');
    }

    it('the metrics port in use', async () => {
      const busy = await hold(0);
      try {
        const port = portOf(busy);
        await refused({ ...prod, METRICS_PORT: String(port) }, 'METRICS_PORT', new RegExp(`METRICS_PORT=${port} is already in use`));
      } finally {
        await release(busy);
      }
    });

    it('a METRICS_HOST that is not an address of this machine', async () => {
      // 192.0.2.1: TEST-NET-1, documentation only, never a local address.
      await refused({ ...prod, METRICS_PORT: '0', METRICS_HOST: '192.0.2.1' }, 'METRICS_HOST', /EADDRNOTAVAIL/);
    });

    const cases: ReadonlyArray<readonly [string, Record<string, string>, string, RegExp]> = [
      ['METRICS_PORT equal to PORT', { PORT: '20999', METRICS_PORT: '20999' }, 'METRICS_PORT', /the public PORT=20999/],
      ['PORT on the prod default metrics port', { PORT: '9464' }, 'METRICS_PORT', /METRICS_PORT is unset, and its default \(9464/],
      ['a METRICS_PORT out of range', { METRICS_PORT: '70000' }, 'METRICS_PORT', /is invalid/],
      ['a METRICS_HOST with a port', { METRICS_HOST: '0.0.0.0:9464' }, 'METRICS_HOST', /is invalid: expected an IP address or host name/],
      [
        'METRICS_HOST with METRICS_PORT=public',
        { METRICS_PORT: 'public', METRICS_HOST: '127.0.0.1' },
        'METRICS_HOST',
        /METRICS_PORT=public/,
      ],
    ];
    for (const [what, env, variable, detail] of cases) {
      it(`${what}: ${variable}`, async () => {
        await refused({ ...prod, ...env }, variable, detail);
      });
    }
  });

  it('a start that fails after the metrics listener is up (no database) exits instead of being kept alive by it', async () => {
    // Port 1: nothing listens there, the migrations fail at once.
    const result = await waitForExit(
      spawnMain({ PORT: '0', METRICS_PORT: '0', RATE_LIMIT_ENABLED: 'false', DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' }),
      40_000,
    );
    assert.equal(result.signal, null, `killed: it did not exit by itself. ${result.stderr}`);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /^rampart: failed to start: database migrations failed/);
  });
});
