// What one identity costs in Redis, per algorithm: MEMORY USAGE of real keys after each used all
// of its limit, held against memoryPerIdentity (what `rampart check-policies` prints) and the
// sliding window counter's promise of a constant size. Keys under a prefix of this test only.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createRedisStore, memoryPerIdentity, type Check, type PolicyOptions, type RateLimitStore } from '../../src';
import { concurrency, quota, slidingWindow, tokenBucket, windowCounter } from '../support/checks';
import { TEST_REDIS } from '../support/redis-server';

describe('memory per identity in Redis (MEMORY USAGE of real keys)', () => {
  let client: Redis;
  let store: RateLimitStore;
  const prefix = `rlmem${randomBytes(3).toString('hex')}`;
  before(() => {
    client = new Redis(TEST_REDIS);
    store = createRedisStore({ client });
  });
  after(async () => {
    const keys = await client.keys(`${prefix}*`);
    if (keys.length > 0) await client.del(...keys);
    await store.close();
    client.disconnect();
  });

  /** Bytes of `check`'s key once one decision of cost = the limit filled it (a key of the limiter's shape, IPv4 identity). */
  async function used(check: Check): Promise<number> {
    const d = await store.decide([check]);
    assert.equal(d.allowed, true, `${check.algorithm}: filled in one decision`);
    return Number(await client.call('MEMORY', 'USAGE', check.key, 'SAMPLES', '0'));
  }
  const key = (name: string, limit: number) => `${prefix}:${name}${limit}:{i:203.0.113.7}`;

  const rows: [PolicyOptions['algorithm'], (limit: number) => Check, (limit: number) => PolicyOptions][] = [
    ['token_bucket', (l) => tokenBucket(key('t', l), 1, l, l), (l) => ({ algorithm: 'token_bucket', rps: 1, burst: l })],
    [
      'sliding_window',
      (l) => slidingWindow(key('w', l), l, 60_000, l),
      (l) => ({ algorithm: 'sliding_window', limit: l, windowSeconds: 60 }),
    ],
    [
      'sliding_window_counter',
      (l) => windowCounter(key('c', l), l, 60_000, l),
      (l) => ({ algorithm: 'sliding_window_counter', limit: l, windowSeconds: 60 }),
    ],
    ['quota', (l) => quota(key('q', l), l, 86_400_000, l), (l) => ({ algorithm: 'quota', limit: l, period: 'day' })],
    ['concurrency', (l) => concurrency(key('k', l), l, 60_000, l), (l) => ({ algorithm: 'concurrency', limit: l })],
  ];

  it('the estimate check-policies prints is within 25 % of MEMORY USAGE, for every algorithm at limits 10, 100 and 1,000', async () => {
    const table: string[] = [];
    for (const [algorithm, check, policy] of rows) {
      const measured: number[] = [];
      for (const limit of [10, 100, 1000]) {
        const bytes = await used(check(limit));
        const estimate = memoryPerIdentity(policy(limit));
        measured.push(bytes);
        assert.ok(Math.abs(estimate - bytes) <= 0.25 * bytes, `${algorithm} at ${limit}: estimated ${estimate}, measured ${bytes}`);
      }
      table.push(`${algorithm} ${measured.join(' / ')}`);
    }
    console.log(`      bytes per identity at limits 10 / 100 / 1,000: ${table.join('; ')}`);
  });

  it('the sliding window counter keeps one integer of at most 100 bytes per identity, whatever the limit and however full', async () => {
    for (const limit of [1, 10, 100, 1000, 10_000_000]) {
      const c = windowCounter(key('cc', limit), limit, 60_000, 1);
      const sizes: number[] = [];
      // One request, then the rest of the limit: the key after its first admission and full.
      for (const cost of limit === 1 ? [1] : [1, limit - 1]) {
        const d = await store.decide([{ ...c, cost }]);
        assert.equal(d.allowed, true, `limit ${limit}, cost ${cost}`);
        sizes.push(Number(await client.call('MEMORY', 'USAGE', c.key, 'SAMPLES', '0')));
      }
      assert.equal((await store.decide([c])).allowed, false, `limit ${limit}: full`);
      assert.equal(await client.call('OBJECT', 'ENCODING', c.key), 'int', `limit ${limit}`);
      assert.ok(
        sizes.every((b) => b <= 100),
        `limit ${limit}: ${sizes.join(', ')} bytes`,
      );
    }
  });
});
