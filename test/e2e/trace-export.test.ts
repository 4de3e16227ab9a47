import assert from 'node:assert/strict';
import { spawnMain, waitForExit, waitForListening } from '../support/child';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver';
import { createTestSchema, type TestSchema } from '../support/postgres';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { TEST_DEADLINE_ENV } from '../support/deadline';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `rampart_trace_spans_total` by result, from the exposition text. */
function spanCounts(exposition: string): Record<string, number> {
  const out: Record<string, number> = { exported: 0, failed: 0, dropped: 0 };
  for (const m of exposition.matchAll(/^rampart_trace_spans_total\{exporter="otlp",result="(\w+)"\} (\d+)/gm))
    out[m[1] as string] = Number(m[2]);
  return out;
}

/** Latencies (ms) and statuses of `GET /v1/status` from 3 loops for `ms`. */
async function load(base: string, ms: number): Promise<{ latencies: number[]; statuses: number[] }> {
  const latencies: number[] = [];
  const statuses: number[] = [];
  const until = performance.now() + ms;
  await Promise.all(
    [0, 1, 2].map(async () => {
      while (performance.now() < until) {
        const t = performance.now();
        const res = await fetch(`${base}/v1/status`);
        await res.arrayBuffer();
        latencies.push(performance.now() - t);
        statuses.push(res.status);
        await sleep(5);
      }
    }),
  );
  return { latencies, statuses };
}

const quantile = (xs: readonly number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))] ?? 0;

/**
 * The trace exporter as a dependency: the sample API traces to a collector behind a proxy;
 * the collector refuses, then goes silent, under load. Requests keep answering 200 at the
 * latency they had, readiness stays 200, and `/metrics` counts the spans exported and failed.
 */
describe('tracing with the collector down: counted, never in the way', function () {
  this.timeout(90_000);
  let receiver: OtlpReceiver;
  let proxy: TcpProxy;
  let schema: TestSchema;

  before(async () => {
    receiver = await startOtlpReceiver();
    proxy = await startTcpProxy(Number(new URL(receiver.url).port));
    schema = await createTestSchema('e2e_trace_export');
  });
  after(async () => {
    await proxy?.close();
    await receiver?.close();
    await schema?.drop();
  });

  it('collector up, refusing, then silent: every request 200 at the same latency, readiness 200, spans counted exported then failed', async () => {
    const child = spawnMain({
      PORT: '0',
      TRACING_ENABLED: 'true',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${proxy.port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      ...TEST_DEADLINE_ENV,
      DATABASE_URL: schema.url,
      RATE_LIMIT_DEFAULT_RPS: '100000',
      RATE_LIMIT_DEFAULT_BURST: '100000',
    });
    const exited = waitForExit(child, 60_000);
    try {
      const port = await waitForListening(child, 30_000);
      const base = `http://127.0.0.1:${port}`;
      const metrics = async () => spanCounts(await (await fetch(`${base}/metrics`)).text());
      /** The counts once `ok` holds (the exporter retries a refused batch within its 5 s timeout before it counts as failed). */
      const countsWhen = async (ok: (c: Record<string, number>) => boolean) => {
        let c = await metrics();
        for (let i = 0; i < 100 && !ok(c); i++) {
          await sleep(100);
          c = await metrics();
        }
        return c;
      };

      const up = await load(base, 3_000);
      // The batch processor exports every second.
      const afterUp = await countsWhen((c) => (c['exported'] ?? 0) >= up.latencies.length);

      proxy.setMode('refuse');
      proxy.resetAll();
      const refusing = await load(base, 3_000);
      const readyRefusing = (await fetch(`${base}/health/ready`)).status;
      const afterRefusing = await countsWhen((c) => (c['failed'] ?? 0) > 0);

      proxy.setMode('blackhole');
      const silent = await load(base, 3_000);
      const readySilent = (await fetch(`${base}/health/ready`)).status;

      const row = (name: string, r: { latencies: number[] }) =>
        `${name}: ${r.latencies.length} requests, p50 ${quantile(r.latencies, 0.5).toFixed(1)} ms, p99 ${quantile(r.latencies, 0.99).toFixed(1)} ms`;
      console.log(`      ${row('collector up', up)}; ${row('refusing', refusing)}; ${row('silent', silent)}`);
      console.log(
        `      spans after up ${JSON.stringify(afterUp)}, after refusing ${JSON.stringify(afterRefusing)}; received ${receiver.spans()}`,
      );

      for (const r of [up, refusing, silent])
        assert.ok(r.statuses.length > 20 && r.statuses.every((s) => s === 200), 'every request answered 200');
      assert.deepEqual([readyRefusing, readySilent], [200, 200], 'tracing never makes readiness fail');
      assert.ok(afterUp['exported'] !== undefined && afterUp['exported'] >= up.latencies.length, `exported ${JSON.stringify(afterUp)}`);
      assert.equal(afterUp['failed'], 0);
      assert.ok((afterRefusing['failed'] ?? 0) > 0, `failed while refused: ${JSON.stringify(afterRefusing)}`);
      // Ending a span never waits for the collector: the same order of latency while it is down.
      assert.ok(quantile(refusing.latencies, 0.5) < quantile(up.latencies, 0.5) + 200, 'no wait for a refusing collector');
      assert.ok(quantile(silent.latencies, 0.5) < quantile(up.latencies, 0.5) + 200, 'no wait for a silent collector');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
