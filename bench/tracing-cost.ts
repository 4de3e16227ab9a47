// Throughput of the sample API's public route with tracing off, with every request sampled and
// with 10 % sampled (`parentbased_traceidratio`), side by side in one run: same build, same load
// (autocannon in its own process, 50 connections), rounds in rotating order, spans exported over
// OTLP/HTTP to a local receiver, the rate limiter on a Redis of its own. Writes bench/results/tracing-cost.json.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startOtlpReceiver } from '../test/support/otlp-receiver';
import { startRedisServer } from '../test/support/redis-server';
import { autocannon, ROOT, startServer, type LoadResult } from './lib';

const DURATION = Number(process.env['DURATION'] ?? 10);
const ROUNDS = Number(process.env['ROUNDS'] ?? 3);
const PROFILE = process.env['PROFILE']; // a directory: each server writes a --cpu-prof there

const MODES = {
  off: { TRACING_ENABLED: 'false' },
  all: { TRACING_ENABLED: 'true', OTEL_TRACES_SAMPLER: 'parentbased_always_on' },
  ratio10: { TRACING_ENABLED: 'true', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' },
} as const;
type Mode = keyof typeof MODES;
const ORDER = (Object.keys(MODES) as Mode[]).filter((m) => (process.env['ONLY'] ?? m).split(',').includes(m));

// CPU time of a process so far (user + system), from /proc: steadier than throughput on a shared
// 2-core machine, where the load generator and Redis take turns with the server.
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

interface Run {
  readonly mode: Mode;
  readonly round: number;
  readonly result: LoadResult;
  /** Spans exported per request. */
  readonly spans: number;
  /** Server CPU per request, µs. */
  readonly cpuUs: number;
}

async function main(): Promise<void> {
  const receiver = await startOtlpReceiver();
  // The limiter on Redis, as deployed: each request's decision is an ioredis call under its span.
  const redis = await startRedisServer();
  const env = {
    REDIS_URL: redis.url,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_DEFAULT_RPS: '1000000',
    RATE_LIMIT_DEFAULT_BURST: '1000000',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
  };
  const runs: Run[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // Rotating order: no mode always runs first (or last) in a round.
    const order = ORDER.map((_, i) => ORDER[(i + round - 1) % ORDER.length] as Mode);
    for (const mode of order) {
      const prof = PROFILE === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`, `--cpu-prof-name=${mode}-${round}.cpuprofile`];
      const server = await startServer(
        [...prof, '--require', join(ROOT, 'dist', 'tracing', 'register.js'), join(ROOT, 'dist', 'app', 'main.js')],
        {
          ...env,
          ...MODES[mode],
        },
      );
      const before = receiver.spans();
      const warm = await autocannon(`http://127.0.0.1:${server.port}/v1/status`, { connections: 50, durationSec: 2 });
      const cpuBefore = cpuSeconds(server.child.pid as number);
      const result = await autocannon(`http://127.0.0.1:${server.port}/v1/status`, { connections: 50, durationSec: DURATION });
      const cpuUs = ((cpuSeconds(server.child.pid as number) - cpuBefore) * 1e6) / result.total;
      await server.stop(); // flushes the exporter
      // Spans per request, over the warm-up and the run: the stop flushed them all.
      const spans = (receiver.spans() - before) / (warm.total + result.total);
      runs.push({ mode, round, result, spans, cpuUs });
      process.stdout.write(
        `${JSON.stringify({ mode, round, spansPerRequest: Number(spans.toFixed(3)), cpuUs: Math.round(cpuUs), ...result })}\n`,
      );
    }
  }
  const of = (mode: Mode) => runs.filter((r) => r.mode === mode);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const off = of('off').map((r) => r.result.requestsPerSecond);
  const rows = ORDER.map((mode) => {
    const rs = of(mode);
    const rps = rs.map((r) => r.result.requestsPerSecond);
    // Each round's ratio against the same round's untraced run: the spread is round to round.
    const ratios = rs.map((r) => r.result.requestsPerSecond / (off[r.round - 1] ?? NaN));
    return {
      mode,
      rps: Math.round(mean(rps)),
      ratio: Number(mean(ratios).toFixed(3)),
      ratioMin: Number(Math.min(...ratios).toFixed(3)),
      ratioMax: Number(Math.max(...ratios).toFixed(3)),
      p99Ms: Number(mean(rs.map((r) => r.result.p99Ms)).toFixed(1)),
      cpuUsPerRequest: Math.round(mean(rs.map((r) => r.cpuUs))),
      // The untraced server's CPU per request over this mode's: what the CPU alone allows.
      cpuRatio: Number((mean(of('off').map((r) => r.cpuUs)) / mean(rs.map((r) => r.cpuUs))).toFixed(3)),
      spansPerRequest: Number(mean(rs.map((r) => r.spans)).toFixed(3)),
    };
  });
  console.table(rows);
  writeFileSync(
    join(__dirname, 'results', 'tracing-cost.json'),
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, route: 'GET /v1/status', durationSec: DURATION, rounds: ROUNDS, summary: rows, runs }, null, 2)}\n`,
  );
  await receiver.close();
  await redis.stop();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
