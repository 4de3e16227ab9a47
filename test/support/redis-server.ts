import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../scripts/ports';

export { freePort } from '../../scripts/ports';

/**
 * The Redis the tests share, each under a key prefix of its own (never flushed): `npm test`
 * starts one and sets `TEST_REDIS_URL`; a bare `mocha` run falls back to 127.0.0.1:6379.
 */
export const TEST_REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const testRedisAddress = new URL(TEST_REDIS_URL.replace(/^rediss?:/, 'http:'));
/** Host and port of {@link TEST_REDIS_URL}, for `new Redis({...})`. */
export const TEST_REDIS = Object.freeze({ host: testRedisAddress.hostname, port: Number(testRedisAddress.port || 6379) });

/** A redis-server process this test started, in its own temp dir; stopped by PID, never by name. */
export interface RedisProcess {
  readonly port: number;
  readonly url: string;
  /** SIGKILL: the server vanishes without a goodbye. */
  kill(): Promise<void>;
  /** Starts the server again on the same port (after `kill`). */
  restart(): Promise<void>;
  /** Stops it for good and removes its directory. */
  stop(): Promise<void>;
}

async function waitForPing(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => undefined);
    try {
      await c.connect();
      if ((await c.ping()) === 'PONG') return;
    } catch {
      // not up yet
    } finally {
      c.disconnect();
    }
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts `redis-server` on 127.0.0.1 and a free port. */
export async function startRedisServer(extraArgs: readonly string[] = []): Promise<RedisProcess> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rampart-redis-'));
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs],
      { stdio: 'ignore' },
    );
    await waitForPing(port, 10_000);
  };
  const killChild = async (signal: NodeJS.Signals) => {
    const c = child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill(signal);
    await exited;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill: () => killChild('SIGKILL'),
    restart: launch,
    async stop() {
      await killChild('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
