// Client-side resets when a keep-alive load meets SIGTERM: @godaddy/terminus used the plain way
// vs rampart's gate. Same routes, same load (50 keep-alive connections, 10 of them on a 1.5 s
// route), SIGTERM after 1 s, several runs each. Writes bench/results/shutdown-resets.json.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitForExit, waitForListening } from '../test/support/child';
import { runKeepAliveLoad, type Outcome } from '../test/support/keep-alive-load';

const RUNS = Number(process.env['RUNS'] ?? 5);
const DELAY_MS = 500;

interface RunResult {
  readonly mode: string;
  readonly requests: number;
  readonly resetsOnReusedSockets: number;
  readonly errorsOnNewConnections: number;
  readonly inFlightAtSigterm: number;
  readonly inFlightCompleted: number;
  readonly shed503: number;
  readonly exitCode: number | null;
  readonly exitMs: number;
}

async function run(mode: string): Promise<RunResult> {
  const child = spawn(
    process.execPath,
    ['--require', require.resolve('tsx/cjs'), join(__dirname, 'servers', 'shutdown-server.ts'), mode, String(DELAY_MS)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = waitForExit(child, 60_000);
  const port = await waitForListening(child, 30_000);
  const stopAfter = (o: Outcome) => o.status === 503;
  const load = runKeepAliveLoad({
    port,
    loops: [
      { path: '/fast', count: 40 },
      { path: '/slow', count: 10 },
    ],
    stopAfter,
    maxMs: 15_000,
  });
  await new Promise((r) => setTimeout(r, 1000));
  const sigtermAt = Date.now();
  child.kill('SIGTERM');
  const outcomes = await load.done;
  const result = await exited;
  const inFlight = outcomes.filter((o) => o.startedAt < sigtermAt && o.endedAt > sigtermAt);
  return {
    mode,
    requests: outcomes.length,
    resetsOnReusedSockets: outcomes.filter((o) => o.error !== undefined && o.reusedSocket).length,
    errorsOnNewConnections: outcomes.filter((o) => o.error !== undefined && !o.reusedSocket).length,
    inFlightAtSigterm: inFlight.length,
    inFlightCompleted: inFlight.filter((o) => o.status === 200).length,
    shed503: outcomes.filter((o) => o.status === 503).length,
    exitCode: result.code,
    exitMs: Date.now() - sigtermAt,
  };
}

async function main(): Promise<void> {
  const results: RunResult[] = [];
  for (let i = 0; i < RUNS; i++) {
    for (const mode of ['terminus', 'rampart']) {
      const r = await run(mode);
      results.push(r);
      process.stdout.write(`${JSON.stringify(r)}\n`);
    }
  }
  const summary = ['terminus', 'rampart'].map((mode) => {
    const rs = results.filter((r) => r.mode === mode);
    const range = (f: (r: RunResult) => number) => `${Math.min(...rs.map(f))}–${Math.max(...rs.map(f))}`;
    return {
      mode,
      runs: rs.length,
      resetsOnReusedSockets: range((r) => r.resetsOnReusedSockets),
      errorsOnNewConnections: range((r) => r.errorsOnNewConnections),
      inFlightCompleted: range((r) => r.inFlightCompleted),
      shed503: range((r) => r.shed503),
    };
  });
  console.table(summary);
  const out = join(__dirname, 'results', 'shutdown-resets.json');
  writeFileSync(
    out,
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, delayMs: DELAY_MS, summary, runs: results }, null, 2)}\n`,
  );
  process.stdout.write(`written to ${out}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
