// Throughput of the sample API's public route with tracing off and on, side by side, in one
// run: same build, same load (autocannon in its own process, 50 connections), spans exported
// over OTLP/HTTP to a local receiver. Writes bench/results/tracing-cost.json.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startOtlpReceiver } from '../test/support/otlp-receiver';
import { autocannon, ROOT, startServer, type LoadResult } from './lib';

const DURATION = Number(process.env['DURATION'] ?? 10);
const ROUNDS = Number(process.env['ROUNDS'] ?? 2);

async function main(): Promise<void> {
  const receiver = await startOtlpReceiver();
  const env = {
    LOG_LEVEL: 'warn',
    RATE_LIMIT_DEFAULT_RPS: '1000000',
    RATE_LIMIT_DEFAULT_BURST: '1000000',
  };
  const results: { mode: string; round: number; result: LoadResult }[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of ['off', 'on']) {
      const server = await startServer(['--require', join(ROOT, 'dist', 'tracing', 'register.js'), join(ROOT, 'dist', 'app', 'main.js')], {
        ...env,
        TRACING_ENABLED: mode === 'on' ? 'true' : 'false',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      });
      await autocannon(`http://127.0.0.1:${server.port}/v1/status`, { connections: 50, durationSec: 2 }); // warm-up
      const result = await autocannon(`http://127.0.0.1:${server.port}/v1/status`, { connections: 50, durationSec: DURATION });
      results.push({ mode, round, result });
      process.stdout.write(`${JSON.stringify({ mode, round, ...result })}\n`);
      await server.stop();
    }
  }
  const mean = (mode: string, f: (r: LoadResult) => number) => {
    const rs = results.filter((r) => r.mode === mode).map((r) => f(r.result));
    return rs.reduce((a, b) => a + b, 0) / rs.length;
  };
  const off = mean('off', (r) => r.requestsPerSecond);
  const on = mean('on', (r) => r.requestsPerSecond);
  const summary = {
    route: 'GET /v1/status',
    offRps: Math.round(off),
    onRps: Math.round(on),
    ratio: Number((on / off).toFixed(3)),
    offP99Ms: mean('off', (r) => r.p99Ms),
    onP99Ms: mean('on', (r) => r.p99Ms),
    spansReceivedBytes: receiver.all().length,
  };
  console.table([summary]);
  writeFileSync(
    join(__dirname, 'results', 'tracing-cost.json'),
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, durationSec: DURATION, rounds: ROUNDS, summary, runs: results }, null, 2)}\n`,
  );
  await receiver.close();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
