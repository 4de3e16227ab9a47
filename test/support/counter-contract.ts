import assert from 'node:assert/strict';
import calculateSlot from 'cluster-key-slot';
import { admittedAt, type Check, type Decision, type RateLimitStore } from '../../src';
import { tokenBucket, windowCounter } from './checks';

const MS = 1000;
const DAY_MS = 86_400_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Two keys of the test in different hash slots, lower slot first (a decision across slots on Cluster). */
function twoSlots(key: (name: string) => string): [string, string] {
  const a = key('ca').replace('{id}', '{a}');
  for (let i = 0; ; i++) {
    const b = key('ca').replace('{id}', `{b${i}}`);
    if (calculateSlot(b) < calculateSlot(a)) return [b, a];
    if (calculateSlot(b) > calculateSlot(a)) return [a, b];
  }
}

/**
 * The sliding window counter on every store (run inside the store contract: the memory store,
 * every Redis client, every topology). Windows of a day keep a test clear of a window's edge
 * except where the edge is what it checks.
 */
export function counterContract(store: () => RateLimitStore, key: (name: string) => string): void {
  describe('sliding window counter', () => {
    it('admits the limit, then refuses until the next window has room; a cost above the limit waits a whole window', async () => {
      const s = store();
      const check = windowCounter(key('swc'), 5, DAY_MS);
      const remaining: number[] = [];
      for (let i = 0; i < 5; i++) remaining.push((await s.decide([check])).remaining[0] as number);
      assert.deepEqual(remaining, [4, 3, 2, 1, 0]);
      const denied = await s.decide([check]);
      assert.deepEqual([denied.allowed, denied.remaining[0]], [false, 0]);
      // Next window: 5 x (1 - f) + 1 <= 5 once f >= 1/5 of it.
      const untilNext = denied.retryAfterUs - DAY_MS * MS * 0.2;
      assert.ok(untilNext > 0 && untilNext <= DAY_MS * MS, String(denied.retryAfterUs));
      // Full again when this window's count has left the next one too.
      assert.ok((denied.resetUs[0] as number) > DAY_MS * MS && (denied.resetUs[0] as number) <= 2 * DAY_MS * MS, String(denied.resetUs[0]));
      const tooBig = await s.decide([windowCounter(key('swc-big'), 5, DAY_MS, 6)]);
      assert.deepEqual([tooBig.allowed, tooBig.retryAfterUs], [false, DAY_MS * MS]);
      const cost = await s.decide([windowCounter(key('swc-cost'), 5, DAY_MS, 3)]);
      assert.deepEqual([cost.allowed, cost.remaining[0]], [true, 2]);
      assert.equal((await s.decide([windowCounter(key('swc-cost'), 5, DAY_MS, 3)])).allowed, false, 'all of a cost or none');
    });

    it("the previous window's count weighs by its overlap: its requests free room gradually, never at the window's start", async () => {
      const s = store();
      const W = 1000;
      const check = windowCounter(key('swc-edge'), 4, W);
      // Filled in one window (the store's own clock, the admission's time, says which); asked from
      // the next one on.
      const filled = await s.decide([windowCounter(check.key, 4, W, 4)]);
      assert.equal(filled.allowed, true);
      const boundaryUs = (Math.floor(admittedAt(filled, 0) / (W * MS)) + 1) * W * MS;
      await sleep((boundaryUs - admittedAt(filled, 0)) / MS + 5);
      // 4 x (1 - f) + 1 <= 4 from f = 1/4: asked every 10 ms, admitted no earlier than 250 ms
      // into the next window by the store's clock, however late this process is woken.
      let admitted: Decision | undefined;
      let refusals = 0;
      while (admitted === undefined) {
        const d = await s.decide([check]);
        if (d.allowed) admitted = d;
        else {
          refusals++;
          await sleep(10);
        }
      }
      const into = admittedAt(admitted, 0) - boundaryUs;
      assert.ok(into >= (W / 4) * MS, `admitted ${into / MS} ms into the window after ${refusals} refusals`);
    });

    it('across slots with a token bucket: all-or-nothing, either one refusing', async () => {
      const s = store();
      const [lo, hi] = twoSlots(key);
      for (const [counterKey, bucketKey] of [
        [lo, hi],
        [hi, lo],
      ] as const) {
        const counter = windowCounter(`${counterKey}:c`, 1, DAY_MS);
        const bucket = tokenBucket(`${bucketKey}:b`, 1 / 3600, 5);
        assert.equal((await s.decide([counter, bucket])).allowed, true);
        const denied = await s.decide([counter, bucket]);
        assert.deepEqual([denied.allowed, denied.remaining], [false, [0, 4]]);
        assert.equal((await s.decide([bucket])).remaining[0], 3, 'the refused request took no token');
        const tight = tokenBucket(`${bucketKey}:t`, 1 / 3600, 1);
        const roomy = windowCounter(`${counterKey}:r`, 10, DAY_MS);
        assert.equal((await s.decide([roomy, tight])).allowed, true);
        assert.equal((await s.decide([roomy, tight])).allowed, false);
        assert.equal((await s.decide([roomy])).remaining[0], 8, 'the counter counted only the admitted request');
      }
    });

    it('a key another algorithm wrote (a policy that changed its algorithm) reads as empty, both ways', async () => {
      const s = store();
      const bucket = tokenBucket(key('swc-was'), 1 / 3600, 3);
      for (let i = 0; i < 3; i++) await s.decide([bucket]);
      assert.equal((await s.decide([windowCounter(bucket.key, 5, DAY_MS)])).remaining[0], 4, "a bucket's TAT is not a counter's state");
      const counter = windowCounter(key('swc-then'), 5, DAY_MS, 5);
      await s.decide([counter]);
      const after = await s.decide([tokenBucket(counter.key, 1 / 3600, 3)]);
      assert.deepEqual([after.allowed, after.remaining[0]], [true, 2], "a counter's state is not a bucket's TAT");
    });

    it('overrides, tiers, penalties and settling work on it as on the others', async () => {
      const s = store();
      const ov: Check = { ...windowCounter(key('swc-ov'), 1, DAY_MS), overridable: true };
      await s.setOverride?.(ov.key, { timeUs: DAY_MS * MS, capacity: 3 });
      const got: boolean[] = [];
      for (let i = 0; i < 4; i++) got.push((await s.decide([ov])).allowed);
      assert.deepEqual(got, [true, true, true, false], 'the override: a limit of 3');
      // A tier: other numbers on the same key carry its count over.
      const tier = (limit: number) => windowCounter(key('swc-tier'), limit, DAY_MS);
      assert.equal((await s.decide([tier(1)])).allowed, true);
      assert.equal((await s.decide([tier(1)])).allowed, false);
      assert.deepEqual((await s.decide([tier(3)])).remaining, [1]);
      // A penalty: the second refusal blocks.
      const pen: Check = {
        ...windowCounter(key('swc-pen'), 1, DAY_MS),
        penalty: { denials: 2, windowUs: 60_000 * MS, blockUs: 60_000 * MS },
      };
      assert.equal((await s.decide([pen])).allowed, true);
      assert.equal((await s.decide([pen])).blocked ?? 0, 0);
      assert.equal((await s.decide([pen])).blocked, 1);
      // Settling: a refund of the admission, a charge now.
      const three = windowCounter(key('swc-settle'), 5, DAY_MS, 3);
      const one = windowCounter(key('swc-settle'), 5, DAY_MS, 1);
      const d = await s.decide([three]);
      await s.adjust?.(three, -2, admittedAt(d, 0));
      assert.equal((await s.decide([one])).remaining[0], 3, '3 taken, 2 given back, 1 more');
      await s.adjust?.(one, 4, Date.now() * MS);
      const debt = await s.decide([one]);
      assert.deepEqual([debt.allowed, debt.remaining[0]], [false, -1], 'a charge is never refused: 6 of 5, then refused');
    });
  });
}
