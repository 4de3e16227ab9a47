import assert from 'node:assert/strict';
import calculateSlot from 'cluster-key-slot';
import fc from 'fast-check';
import { admittedAt, type Check, type RateLimitStore } from '../../src';
import { concurrency, quota, slidingWindow, tokenBucket } from './checks';

const HOUR_MS = 3_600_000;

/** What a store holds for `check` now, read without charging it. */
async function left(store: RateLimitStore, check: Check): Promise<number> {
  const d = await (store.peek as NonNullable<RateLimitStore['peek']>).call(store, [check]);
  return d.remaining[0] as number;
}

/** Two keys of one identity-free prefix in different hash slots (a decision across slots on Cluster). */
function twoSlots(prefix: string, name: string): [string, string] {
  const a = `${prefix}:${name}:{a}`;
  for (let i = 0; ; i++) {
    const b = `${prefix}:${name}:{b${i}}`;
    if (calculateSlot(b) !== calculateSlot(a)) return [a, b];
  }
}

/**
 * Reserve, then settle: `adjust` on every store (run inside the store contract, so on the memory
 * store, every Redis client and every topology). `store()` is the contract's store; `key(name)`
 * a fresh key of the test.
 */
export function settleContract(store: () => RateLimitStore, key: (name: string) => string, prefix: () => string): void {
  describe('adjust (reserve, then settle)', () => {
    it('token bucket: a refund gives the tokens back but never past full; a charge is never refused and leaves a debt', async () => {
      const s = store();
      const check = tokenBucket(key('tb'), 1 / 3600, 10, 6);
      const d = await s.decide([check]);
      assert.equal(d.remaining[0], 4);
      await s.adjust?.(check, -4, admittedAt(d, 0));
      assert.equal(await left(s, check), 8);
      await s.adjust?.(check, -50, admittedAt(d, 0));
      assert.equal(await left(s, check), 10, 'never past full');
      await s.adjust?.(check, 13, admittedAt(d, 0));
      const refused = await s.decide([tokenBucket(check.key, 1 / 3600, 10, 1)]);
      assert.equal(refused.allowed, false, 'in debt: 13 taken from 10');
      // 3 tokens of debt and one more: four hours at one token an hour.
      assert.ok(Math.abs(refused.retryAfterUs / 3_600_000_000 - 4) < 0.01, String(refused.retryAfterUs));
    });

    it("sliding window: a refund removes only that admission's entries; a charge adds entries now", async () => {
      const s = store();
      const three = slidingWindow(key('sw'), 5, HOUR_MS, 3);
      const one = slidingWindow(key('sw'), 5, HOUR_MS, 1);
      const first = await s.decide([three]);
      await new Promise((r) => setTimeout(r, 5));
      const second = await s.decide([one]);
      assert.equal(second.remaining[0], 1);
      // More than the admission took: only its 3 entries go.
      await s.adjust?.(three, -10, admittedAt(first, 0));
      assert.equal(await left(s, one), 4);
      await s.adjust?.(three, -3, admittedAt(first, 0));
      assert.equal(await left(s, one), 4, 'a second refund of the same admission finds nothing left to remove');
      await s.adjust?.(one, 6, admittedAt(second, 0));
      assert.equal(await left(s, one), -2, 'a charge is never refused');
      assert.equal((await s.decide([one])).allowed, false);
    });

    it('quota: a refund within the period, never below 0; a charge counts now, past the limit', async () => {
      const s = store();
      const check = quota(key('q'), 10, 86_400_000, 4);
      const d = await s.decide([check]);
      await s.adjust?.(check, -3, admittedAt(d, 0));
      assert.equal(await left(s, check), 9);
      await s.adjust?.(check, -7, admittedAt(d, 0));
      assert.equal(await left(s, check), 10, 'never below 0');
      await s.adjust?.(check, 12, admittedAt(d, 0));
      assert.equal(await left(s, check), -2);
      // An admission of an earlier period is not refunded in this one.
      await s.adjust?.(check, -5, admittedAt(d, 0) - 86_400_000_000);
      assert.equal(await left(s, check), -2);
    });

    it('a concurrency check has no cost to settle: adjust rejects', async () => {
      const s = store();
      const check = concurrency(key('c'), 2, 10_000);
      const d = await s.decide([check]);
      await assert.rejects(async () => s.adjust?.(check, -1, admittedAt(d, 0)), /no cost to settle/);
    });

    it('a decision across hash slots: each check settles by its own admission time', async () => {
      const s = store();
      const [ka, kb] = twoSlots(prefix(), 'slots');
      const a = slidingWindow(ka, 5, HOUR_MS, 2);
      const b = slidingWindow(kb, 5, HOUR_MS, 2);
      const d = await s.decide([a, b]);
      assert.equal(d.allowed, true);
      await s.adjust?.(a, -2, admittedAt(d, 0));
      await s.adjust?.(b, -1, admittedAt(d, 1));
      assert.deepEqual([await left(s, a), await left(s, b)], [5, 4]);
    });

    it('racing reservations settled to random real costs end exactly at the sum of the real costs (token bucket, window, quota)', async () => {
      const s = store();
      const seed = Number(process.env['FC_SEED'] ?? Date.now() % 1_000_000);
      const real = fc.sample(fc.integer({ min: 0, max: 40 }), { seed, numRuns: 60 });
      const reserve = 20;
      const checks = [
        tokenBucket(key('race-tb'), 1 / 36_000, 10_000, reserve),
        slidingWindow(key('race-sw'), 10_000, HOUR_MS, reserve),
        quota(key('race-q'), 10_000, 86_400_000, reserve),
      ];
      for (const check of checks) {
        await Promise.all(
          real.map(async (cost) => {
            const d = await s.decide([check]);
            assert.equal(d.allowed, true);
            if (cost !== reserve) await s.adjust?.(check, cost - reserve, admittedAt(d, 0));
          }),
        );
        const sum = real.reduce((x, y) => x + y, 0);
        assert.equal(await left(s, check), 10_000 - sum, `${check.algorithm}, seed ${seed}`);
      }
    });
  });
}
