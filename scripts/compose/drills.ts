// `npm run compose:drills`: failover drills on the compose environment, under steady load from
// the host through 127.0.0.1. Each drill records every answer and writes its figures to
// bench/results/compose-drills.json. Not part of CI (see the README): the smoke is.
//   sentinel  docker kill of the Sentinel master: decisions resume after the promotion, every
//             answer is a documented one, no request waits over 1 s.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitUntil } from '../redis-stack';
import { APP, containerOf, down, up } from './compose';

interface Answer {
  readonly sentAt: number;
  readonly ms: number;
  readonly status: number;
  readonly error?: string;
}

/** `workers` loops of GET `path` until stopped; every answer with its time. */
function load(path: string, workers: number, t0: number): { stop(): Promise<Answer[]> } {
  const answers: Answer[] = [];
  let running = true;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const sentAt = performance.now() - t0;
      try {
        const res = await fetch(`${APP}${path}`, { signal: AbortSignal.timeout(5_000) });
        const body = (await res.json()) as { error?: string };
        answers.push({ sentAt, ms: performance.now() - t0 - sentAt, status: res.status, ...(body.error === undefined ? {} : { error: body.error }) });
      } catch (err) {
        answers.push({ sentAt, ms: performance.now() - t0 - sentAt, status: 0, error: String(err) });
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return answers;
    },
  };
}

function sentinelMaster(): string {
  return execFileSync('docker', ['exec', containerOf('sentinel-1'), 'redis-cli', '-p', '26379', 'SENTINEL', 'get-master-addr-by-name', 'mymaster'], { encoding: 'utf8' }).trim().split('\n')[0] ?? '';
}

async function sentinelDrill(): Promise<Record<string, unknown>> {
  await up('sentinel');
  const t0 = performance.now();
  const before = sentinelMaster();
  const traffic = load('/v1/slow?ms=0', 8, t0);
  await new Promise((r) => setTimeout(r, 3_000));
  const killedAt = performance.now() - t0;
  execFileSync('docker', ['kill', containerOf('redis-master')], { stdio: 'ignore' });
  let promotedAt = 0;
  await waitUntil('a new master', async () => {
    const now = sentinelMaster();
    if (now !== '' && now !== before) {
      promotedAt = performance.now() - t0;
      return true;
    }
    return false;
  }, 60_000, 50);
  await new Promise((r) => setTimeout(r, 5_000));
  const answers = await traffic.stop();
  const byStatus: Record<string, number> = {};
  for (const a of answers) {
    const k = `${a.status}${a.error === undefined ? '' : ` ${a.error}`}`;
    byStatus[k] = (byStatus[k] ?? 0) + 1;
  }
  const documented = answers.every((a) => a.status === 200 || a.status === 429 || (a.status === 503 && a.error === 'RATE_LIMITER_UNAVAILABLE'));
  const resumed = answers.filter((a) => a.sentAt >= promotedAt && (a.status === 200 || a.status === 429)).sort((a, b) => a.sentAt - b.sentAt)[0];
  const slowest = Math.max(...answers.map((a) => a.ms));
  const result = {
    drill: 'sentinel: docker kill of the master under load (8 workers, GET /v1/slow?ms=0, fail closed)',
    requests: answers.length,
    byStatus,
    promotionMs: Math.round(promotedAt - killedAt),
    firstDecisionAfterPromotionMs: resumed === undefined ? null : Math.round(resumed.sentAt + resumed.ms - promotedAt),
    slowestMs: Math.round(slowest),
    onlyDocumentedAnswers: documented,
  };
  if (!documented || resumed === undefined || slowest > 1_000) throw new Error(`sentinel drill failed: ${JSON.stringify(result)}`);
  return result;
}

async function main(): Promise<void> {
  const keepAlive = setInterval(() => undefined, 1_000);
  const results: Record<string, unknown>[] = [];
  try {
    results.push(await sentinelDrill());
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(__dirname, '..', '..', 'bench', 'results', 'compose-drills.json'), `${JSON.stringify({ measuredAt: new Date().toISOString(), results }, null, 2)}\n`);
  } finally {
    down();
    clearInterval(keepAlive);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`[drills] ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
