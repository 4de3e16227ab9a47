import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startRedisServer, type RedisProcess } from '../support/redis-server';

const CHILD = join(__dirname, '..', 'support', 'outage-child.ts');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An outage child (test/support/outage-child.ts): `load` resolves with its answers' outcomes. */
async function startChild(url: string, prefix: string, limit: number) {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    ['--require', require.resolve('tsx/cjs'), CHILD, url, prefix, String(limit)],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const next = async () => {
    const r = await Promise.race([lines.next(), exited.then(() => Promise.reject(new Error(`outage child exited: ${stderr}`)))]);
    return JSON.parse(String(r.value)) as { ready?: boolean; events?: [number, string][] };
  };
  await next();
  return {
    async load(ms: number, loops: number): Promise<[number, string][]> {
      child.stdin.write(`load ${ms} ${loops}\n`);
      return (await next()).events ?? [];
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * failMode 'local': three instances share one limit of L per second (a 1 s sliding window); Redis
 * is killed for 10 s under load, then started again. While it is down each instance decides with
 * its third of L (the fleet's size learned from the heartbeats); when it is back they decide on
 * Redis again.
 */
describe('failMode local: limits that hold while Redis is down', function () {
  this.timeout(120_000);
  const L = 30;
  let redis: RedisProcess;
  let children: Awaited<ReturnType<typeof startChild>>[] = [];

  before(async () => {
    redis = await startRedisServer();
    const prefix = `out${randomBytes(3).toString('hex')}`;
    children = await Promise.all([0, 1, 2].map(() => startChild(redis.url, prefix, L)));
  });
  after(async () => {
    await Promise.all(children.map((c) => c.stop()));
    await redis?.stop();
  });

  it(`3 instances, L = ${L}/s, Redis killed for 10 s: the fleet admits 0.8 L to 1.2 L per second during the outage and decides on Redis again after it`, async () => {
    const start = Date.now();
    const loads = Promise.all(children.map((c) => c.load(19_000, 4)));
    await sleep(4_000);
    const down = Date.now();
    await redis.kill();
    await sleep(10_000);
    const restarting = Date.now();
    await redis.restart();
    const up = Date.now();
    const perChild = await loads;
    const events = perChild.flat();

    const admitted = (from: number, to: number) =>
      events.filter(([t, o]) => t >= from && t < to && (o === 'allowed' || o === 'local_allowed')).length;
    // Per second of the outage (from the kill to the restart), across the fleet.
    const seconds: number[] = [];
    for (let t = down; t + 1000 <= restarting; t += 1000) seconds.push(admitted(t, t + 1000));
    const outageRate = admitted(down, restarting) / ((restarting - down) / 1000);
    const beforeRate = admitted(start + 1000, down) / ((down - start - 1000) / 1000);
    // Back on Redis: each instance's first decision by the store after Redis answers again.
    const back = perChild.map((ev) => {
      const first = ev.find(([t, o]) => t >= up && (o === 'allowed' || o === 'limited'));
      return first === undefined ? Infinity : first[0] - up;
    });
    const localAfter = events.filter(([t, o]) => t >= up + 1000 && o.startsWith('local')).length;
    const other = events.filter(([, o]) => !['allowed', 'limited', 'local_allowed', 'local_limited'].includes(o));
    console.log(
      `      before: ${beforeRate.toFixed(1)}/s on Redis; outage ${((restarting - down) / 1000).toFixed(1)} s: ${outageRate.toFixed(1)}/s (per second: ${seconds.join(', ')}); restart took ${up - restarting} ms; back on Redis after ${back.map((b) => `${b} ms`).join(', ')}`,
    );
    assert.deepEqual(other, [], 'every answer a decision: no 503, no fail-open');
    assert.ok(beforeRate <= L * 1.05, `on Redis the fleet admits at most L per second (${beforeRate})`);
    assert.ok(outageRate >= 0.8 * L && outageRate <= 1.2 * L, `during the outage: ${outageRate}/s, L = ${L}`);
    assert.ok(Math.max(...seconds) <= 2 * L, `no second of the outage above 2 L: ${seconds.join(', ')}`);
    assert.ok(Math.max(...back) < 5_000, `every instance back on Redis (${back.join(', ')} ms)`);
    assert.equal(localAfter, 0, 'no local decision once Redis has answered for a second');
  });
});
