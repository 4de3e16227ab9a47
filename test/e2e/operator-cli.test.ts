// `rampart peek|reset|block|unblock` as an operator runs it: a real process against a real Redis,
// on the bucket an app's requests filled, the identity as the operator knows it (an address).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import request from 'supertest';
import { createRateLimiter, createRedisStore, defaultPolicies, loadPolicyFile, type RateLimiter } from '../../src';
import { CONFIG_DEFAULTS } from '../../src/config';
import { childEnv, waitForExit, type RunResult } from '../support/child';
import { limitedApp } from '../support/limiter-app';
import { startRedisServer, type RedisProcess } from '../support/redis-server';

const CLI = join(__dirname, '..', '..', 'src', 'entries', 'cli.ts');

describe('rampart peek|reset|block|unblock (the operator commands, a real process)', function () {
  this.timeout(60_000);
  let redis: RedisProcess;
  let client: Redis;
  let limiter: RateLimiter;
  let dir: string;
  let file: string;
  const ip = '203.0.113.50';

  before(async () => {
    redis = await startRedisServer();
    dir = mkdtempSync(join(tmpdir(), 'rampart-operator-'));
    file = join(dir, 'policies.json');
    writeFileSync(
      file,
      JSON.stringify({
        policies: {
          guarded: {
            algorithm: 'sliding_window',
            limit: 2,
            windowSeconds: 60,
            key: 'ip',
            penalty: { denials: 1, withinSeconds: 60, blockSeconds: 600 },
          },
        },
      }),
    );
    client = new Redis(redis.port, '127.0.0.1');
    const defaults = defaultPolicies(CONFIG_DEFAULTS.RATE_LIMIT_DEFAULT_RPS, CONFIG_DEFAULTS.RATE_LIMIT_DEFAULT_BURST);
    // The deny cache on, as an app runs it: a lifted block must be seen by its next request.
    limiter = createRateLimiter({
      store: createRedisStore({ client }),
      policies: loadPolicyFile(file, defaults).policies,
    });
  });
  after(async () => {
    await limiter?.close();
    client?.disconnect();
    await redis?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const cli = (...args: string[]): Promise<RunResult> =>
    waitForExit(
      spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), CLI, ...args], {
        env: childEnv({ REDIS_URL: redis.url, RATE_LIMIT_POLICIES_FILE: file }),
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      30_000,
    );
  const hit = async () =>
    (
      await request(limitedApp(limiter.limit('guarded'), { trustProxy: true }))
        .get('/')
        .set('x-forwarded-for', ip)
    ).status;

  it('reset lifts the penalty the requests put in place: the next request is admitted', async () => {
    assert.deepEqual([await hit(), await hit(), await hit(), await hit()], [200, 200, 429, 429]);
    const peeked = await cli('peek', '--policy', 'guarded', '--identity', ip);
    assert.equal(peeked.code, 0, peeked.stderr);
    const seen = JSON.parse(peeked.stdout) as { key: string; blocked: boolean; remaining: number; retryAfterMs: number };
    console.log(`      rampart peek: ${peeked.stdout.trim()}`);
    assert.equal(seen.key, `rl:guarded:{i:${ip}}`);
    assert.deepEqual([seen.blocked, seen.remaining], [true, 0]);
    assert.ok(seen.retryAfterMs > 590_000, 'the 600 s block');
    const reset = await cli('reset', '--policy', 'guarded', '--identity', ip);
    console.log(`      rampart reset: ${reset.stdout.trim()}`);
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /^reset: rl:guarded:\{i:203\.0\.113\.50\} /);
    assert.equal(await hit(), 200, 'admitted after the reset');
  });

  it('block refuses the address for its time, unblock lifts it; other addresses untouched', async () => {
    const blocked = await cli('block', '--policy', 'guarded', '--identity', ip, '--seconds', '120');
    console.log(`      rampart block: ${blocked.stdout.trim()}`);
    assert.equal(blocked.code, 0, blocked.stderr);
    assert.equal(await hit(), 429);
    assert.equal(
      (
        await request(limitedApp(limiter.limit('guarded'), { trustProxy: true }))
          .get('/')
          .set('x-forwarded-for', '203.0.113.51')
      ).status,
      200,
    );
    const unblocked = await cli('unblock', '--policy', 'guarded', '--identity', ip);
    assert.equal(unblocked.code, 0, unblocked.stderr);
    assert.equal(await hit(), 200);
  });

  it('says what it cannot do: usage (2), an unknown policy or a block without a penalty (1), no REDIS_URL (2)', async () => {
    const usage = await cli('reset', '--policy', 'guarded');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^usage: rampart peek\|reset\|block\|unblock/);
    const unknown = await cli('reset', '--policy', 'nope', '--identity', ip);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown policy "nope"/);
    const noPenalty = await cli('block', '--policy', 'public', '--identity', ip, '--seconds', '10');
    assert.equal(noPenalty.code, 1);
    // One line naming the command once, and the fix.
    assert.match(
      noPenalty.stderr,
      /^rampart: block: policy "public" must be a policy with a penalty \(a block is its state: add penalty: /,
    );
    const noUrl = await waitForExit(
      spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), CLI, 'peek', '--policy', 'public', '--identity', ip], {
        env: childEnv({}),
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      30_000,
    );
    assert.equal(noUrl.code, 2);
    assert.match(noUrl.stderr, /REDIS_URL/);
  });
});
