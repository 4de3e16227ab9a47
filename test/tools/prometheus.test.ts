import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../scripts/ports';
import { waitUntil } from '../../scripts/wait';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { startRedisServer, type RedisProcess } from '../support/redis-server';
import { startSampleChild, type SampleChild } from '../support/sample-child';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';

const ROOT = join(__dirname, '..', '..');
const RULES = join(ROOT, 'compose', 'prometheus', 'rampart.rules.yml');
const DASHBOARD = join(ROOT, 'compose', 'grafana', 'dashboards', 'rampart.json');
const hasPrometheus = spawnSync('prometheus', ['--version']).status === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface PromAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
}

/** Every `expr` of the dashboard's panels, with Grafana's `$__rate_interval` as Prometheus reads it here. */
function dashboardQueries(): { panel: string; expr: string }[] {
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  return dash.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr.replaceAll('$__rate_interval', '1m') })));
}

// A real Prometheus (Debian's binary) scraping the sample API every second with the compose rules.
describe('Prometheus scraping the sample API: the limiter alert through a Redis outage, and every dashboard query', function () {
  this.timeout(240_000);
  let schema: TestSchema;
  let redis: RedisProcess;
  let proxy: TcpProxy;
  let app: SampleChild;
  let receiver: OtlpReceiver | undefined;
  let prometheus: ChildProcess | undefined;
  let dir: string;
  let api: string;

  before(async function () {
    assert.ok(hasPrometheus, 'prometheus is not on the PATH: install it (Debian: apt-get install prometheus) to run this suite');
    schema = await createTestSchema('e2e_prometheus');
    redis = await startRedisServer();
    proxy = await startTcpProxy(redis.port);
    // Traced, as a deployment with a collector is: the dashboard's trace export panel has data.
    receiver = await startOtlpReceiver();
    app = await startSampleChild({
      MODE: 'dev',
      RATE_LIMIT_BACKEND: 'redis',
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      DATABASE_URL: schema.url,
      TRACING_ENABLED: 'true',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    });
    dir = mkdtempSync(join(tmpdir(), 'rampart-prometheus-'));
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        `rule_files: [${JSON.stringify(RULES)}]`,
        'scrape_configs:',
        '  - job_name: rampart',
        // The metrics listener, as compose's Prometheus scrapes it (METRICS_PORT).
        `    static_configs: [{ targets: [${JSON.stringify(new URL(app.metricsBase).host)}] }]`,
        '',
      ].join('\n'),
    );
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    prometheus.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    await waitUntil(`Prometheus ready (${log})`, async () => (await fetch(`${api}/-/ready`)).status === 200, 30_000, 200);
    await waitUntil(
      'the sample API scraped',
      async () => {
        const body = (await (await fetch(`${api}/api/v1/targets`)).json()) as { data: { activeTargets: { health: string }[] } };
        return body.data.activeTargets.some((t) => t.health === 'up');
      },
      30_000,
      250,
    );
  });

  after(async () => {
    if (prometheus !== undefined && prometheus.exitCode === null) {
      const exited = new Promise((r) => prometheus?.once('exit', r));
      prometheus.kill('SIGTERM');
      await exited;
    }
    await app?.kill();
    await receiver?.close();
    await proxy?.close();
    await redis?.stop();
    await schema?.drop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  async function alerts(): Promise<PromAlert[]> {
    const body = (await (await fetch(`${api}/api/v1/alerts`)).json()) as { data: { alerts: PromAlert[] } };
    return body.data.alerts;
  }
  async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const body = (await (await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as {
      status: string;
      error?: string;
      data: { result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    assert.equal(body.status, 'success', `${expr}: ${body.error}`);
    return body.data.result;
  }

  it('RampartLimiterFailingClosed goes pending, then firing during the outage, and resolves after it; the dashboard queries all return data', async () => {
    // Traffic: one client at ~40 requests/s on a public route (policy "public", 5/s burst 10:
    // allowed and limited), readiness probed twice a second.
    let running = true;
    const answers: Record<string, number> = {};
    const traffic = (async () => {
      while (running) {
        const res = await fetch(`${app.base}/v1/status`).catch(() => undefined);
        const key = String(res?.status ?? 'error');
        answers[key] = (answers[key] ?? 0) + 1;
        await res?.arrayBuffer();
        await sleep(25);
      }
    })();
    const probes = (async () => {
      while (running) {
        await (await fetch(`${app.base}/health/ready`).catch(() => undefined))?.arrayBuffer();
        await sleep(500);
      }
    })();

    const timeline: string[] = [];
    const t0 = Date.now();
    let last = '';
    const watch = async (): Promise<string> => {
      const now = await alerts();
      const mine = now.filter((a) => a.labels['alertname'] === 'RampartLimiterFailingClosed');
      const state = mine.length === 0 ? 'inactive' : mine.some((a) => a.state === 'firing') ? 'firing' : 'pending';
      const breaker = now.some((a) => a.labels['alertname'] === 'RampartBreakerOpen' && a.state === 'firing');
      const line = `${state}${breaker ? ' (RampartBreakerOpen firing)' : ''}`;
      if (line !== last) timeline.push(`${((Date.now() - t0) / 1000).toFixed(1)} s: RampartLimiterFailingClosed ${line}`);
      last = line;
      return state;
    };
    try {
      // Healthy: 8 s of traffic, no limiter alert.
      for (let i = 0; i < 8; i++) {
        assert.equal(await watch(), 'inactive');
        await sleep(1000);
      }
      // Outage: Redis refuses new connections and the open ones are reset.
      timeline.push(`${((Date.now() - t0) / 1000).toFixed(1)} s: Redis outage begins`);
      proxy.setMode('refuse');
      proxy.resetAll();
      const seen = new Set<string>();
      const outageEnds = Date.now() + 75_000;
      while (Date.now() < outageEnds) {
        const state = await watch();
        seen.add(state);
        if (state === 'firing' && last.includes('RampartBreakerOpen')) break;
        await sleep(1000);
      }
      assert.ok(seen.has('pending'), `pending before firing: ${timeline.join('; ')}`);
      assert.equal(last, 'firing (RampartBreakerOpen firing)', timeline.join('; '));
      const firingAt = (Date.now() - t0) / 1000;
      // Recovery.
      proxy.setMode('forward');
      timeline.push(`${((Date.now() - t0) / 1000).toFixed(1)} s: Redis back`);
      await waitUntil('the alert to resolve', async () => (await watch()) === 'inactive', 120_000, 1000);
      timeline.push(`${((Date.now() - t0) / 1000).toFixed(1)} s: resolved`);
      process.stdout.write(`      alert states: ${timeline.join('; ')}\n      answers: ${JSON.stringify(answers)}\n`);
      assert.ok(
        firingAt > 0 && (answers['503'] ?? 0) > 0 && (answers['200'] ?? 0) > 0 && (answers['429'] ?? 0) > 0,
        JSON.stringify(answers),
      );

      // Every query of the dashboard returns data.
      const empty: string[] = [];
      const queries = dashboardQueries();
      for (const q of queries) if ((await query(q.expr)).length === 0) empty.push(`${q.panel}: ${q.expr}`);
      assert.deepEqual(empty, []);
      process.stdout.write(`      dashboard: ${queries.length} queries, each returned data\n`);
    } finally {
      running = false;
      await Promise.all([traffic, probes]);
    }
  });
});
