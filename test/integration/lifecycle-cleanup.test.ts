import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { childEnv, waitForExit } from '../support/child';
import { startRedisServer, type RedisProcess } from '../support/redis-server';

const CHILD = join(__dirname, '..', 'support', 'lifecycle-child.ts');

describe('createLifecycle cleanup phases (a real SIGTERM, a real Redis)', function () {
  this.timeout(30_000);
  let redis: RedisProcess;
  before(async () => {
    redis = await startRedisServer();
  });
  after(async () => {
    await redis?.stop();
  });

  it("awaits what a phase returns (closeRedisClient's Promise<boolean>, a slow Promise<string>), accepts plain values, fails a phase that throws", async () => {
    const child = spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), CHILD, redis.url], {
      env: childEnv({}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = waitForExit(child, 20_000);
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => {
        if (d.toString().includes('{"ready":true}')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`exited with ${code} before ready`)));
    });
    child.kill('SIGTERM');
    const result = await exited;
    const lines = result.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const after = lines.find((l) => 'ran' in l);
    assert.deepEqual(after, { ran: ['sync', 'slow'] }, 'each phase ran after the previous one settled');
    const report = lines.find((l) => l['msg'] === 'shutdown complete') as
      { phases: { name: string; ok: boolean; error?: string }[]; exitCode: number } | undefined;
    assert.ok(report !== undefined, result.stdout);
    assert.deepEqual(
      report.phases.map(({ name, ok, error }) => ({ name, ok, ...(error === undefined ? {} : { error }) })),
      [
        { name: 'redis', ok: true },
        { name: 'sync', ok: true },
        { name: 'value', ok: true },
        { name: 'slow', ok: true },
        { name: 'throws', ok: false, error: 'sync failure' },
        { name: 'after', ok: true },
      ],
    );
    assert.equal(report.exitCode, 1);
    assert.equal(result.code, 1, 'a failed phase exits 1');
  });
});
