// Load shedding on vs off under twice the capacity, side by side in one run. A route costing
// WORK_MS of CPU; its capacity is measured first (autocannon, closed loop); then open-loop load
// at OVERLOAD × capacity for DURATION s against the same server without and with rampart's
// shedder, and 200 keep-alive clients that honour Retry-After. Writes bench/results/shedding.json. env: DURATION (10), ROUNDS (2), OVERLOAD (2), WORK_MS (4)
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { autocannon, ROOT, startServer } from './lib';

const DURATION = Number(process.env['DURATION'] ?? 10);
const ROUNDS = Number(process.env['ROUNDS'] ?? 2);
const OVERLOAD = Number(process.env['OVERLOAD'] ?? 2);
const WORK_MS = process.env['WORK_MS'] ?? '4';
const TSX = ['--require', require.resolve('tsx/cjs')];

interface Run {
  readonly sent: number;
  readonly goodput: number;
  readonly goodputWithin1s: number;
  readonly okP50Ms: number;
  readonly okP99Ms: number;
  readonly okMaxMs: number;
  readonly counts: Record<string, number>;
}

function openLoop(url: string, rate: number, seconds: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...TSX, join(ROOT, 'bench', 'shed-load.ts'), url, String(rate), String(seconds)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as Run) : reject(new Error(`load exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const server = (shed: 'on' | 'off') =>
    startServer([...TSX, join(ROOT, 'bench', 'servers', 'shed-app.ts')], { SHED: shed, WORK_MS }, '/health/ready');
  const probe = await server('off');
  const capacity = (await autocannon(`http://127.0.0.1:${probe.port}/work`, { connections: 20, durationSec: 5 })).requestsPerSecond;
  await probe.stop();
  const rate = Math.round(capacity * OVERLOAD);
  process.stdout.write(`${JSON.stringify({ capacity: Math.round(capacity), offered: rate })}\n`);
  // Two kinds of overload: independent users arriving at twice the capacity (open loop, new
  // connections as needed), and 200 keep-alive clients (a proxy's pool) that send again as soon
  // as they are answered, waiting out a 503's Retry-After first.
  const scenarios = [
    { name: `open loop at ${OVERLOAD}x capacity`, load: rate },
    { name: '200 keep-alive clients, closed loop, honouring Retry-After', load: -200 },
  ];
  const runs: { scenario: string; shed: string; round: number; run: Run }[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const scenario of scenarios) {
      for (const shed of ['off', 'on'] as const) {
        const s = await server(shed);
        await openLoop(`http://127.0.0.1:${s.port}/work`, Math.round(capacity / 2), 2); // warm-up below capacity
        const run = await openLoop(`http://127.0.0.1:${s.port}/work`, scenario.load, DURATION);
        runs.push({ scenario: scenario.name, shed, round, run });
        process.stdout.write(`${JSON.stringify({ scenario: scenario.name, shed, round, ...run })}\n`);
        await s.stop();
      }
    }
  }
  const mean = (scenario: string, shed: string, f: (r: Run) => number) => {
    const xs = runs.filter((r) => r.scenario === scenario && r.shed === shed).map((r) => f(r.run));
    return Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
  };
  const summarize = (scenario: string, shed: string) => ({
    goodput: mean(scenario, shed, (r) => r.goodput),
    goodputWithin1s: mean(scenario, shed, (r) => r.goodputWithin1s),
    okP50Ms: mean(scenario, shed, (r) => r.okP50Ms),
    okP99Ms: mean(scenario, shed, (r) => r.okP99Ms),
    shedPerSecond: mean(scenario, shed, (r) => (r.counts['503'] ?? 0) / DURATION),
    timeoutsPerRun: mean(scenario, shed, (r) => r.counts['timeout'] ?? 0),
  });
  const summary = {
    route: `GET /work (${WORK_MS} ms of CPU per request), shedder at its defaults`,
    capacityRps: Math.round(capacity),
    seconds: DURATION,
    rounds: ROUNDS,
    scenarios: scenarios.map((sc) => ({ name: sc.name, off: summarize(sc.name, 'off'), on: summarize(sc.name, 'on') })),
    node: process.version,
    runs,
  };
  writeFileSync(join(ROOT, 'bench', 'results', 'shedding.json'), `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify({ ...summary, runs: undefined })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
