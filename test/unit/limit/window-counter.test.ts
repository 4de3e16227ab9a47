import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  COUNTER_MAX,
  counterAdmit,
  counterEstimate,
  counterSettle,
  counterState,
  counterWait,
  readCounter,
  type CounterState,
} from '../../../src/limit/window-counter';

// src/limit/window-counter.ts: the sliding window counter's arithmetic (the Redis scripts'
// COUNTER_LUA is held to the same by the store contract).
const W = 60_000_000;

describe('limit/window-counter', () => {
  it('the state moves with the window: the current count becomes the previous one, an older state is empty', () => {
    assert.deepEqual(counterState([10, 7, 3], 10 * W + 5, W), [10, 7, 3]);
    assert.deepEqual(counterState([10, 7, 3], 11 * W, W), [11, 0, 7]);
    assert.deepEqual(counterState([10, 7, 3], 12 * W, W), [12, 0, 0]);
    assert.deepEqual(counterState(undefined, 12 * W + 1, W), [12, 0, 0]);
    // The index is compared modulo 16, as the scripts store it: a state of windows of another
    // length (a changed window) is taken for this window's only when the indexes agree so.
    assert.deepEqual(counterState([10 + 16, 7, 3], 10 * W, W), [10, 7, 3]);
    assert.deepEqual(counterState([10 + 17, 7, 3], 10 * W, W), [10, 0, 0]);
  });

  it('the previous count weighs by the part of it the sliding window still covers', () => {
    assert.equal(counterEstimate(11 * W, W, [11, 0, 100]), 100);
    assert.equal(counterEstimate(11 * W + W / 4, W, [11, 5, 100]), 80);
    assert.equal(counterEstimate(12 * W - 1, W, [11, 5, 100]) < 5.001, true);
  });

  it('a charge is held at COUNTER_MAX; a refund goes to the admission window, never below 0, nowhere once it is older', () => {
    assert.deepEqual(counterAdmit([3, COUNTER_MAX - 1, 0], 5), [3, COUNTER_MAX, 0]);
    assert.deepEqual(counterSettle([3, 4, 6], W, -10, 3 * W + 1), [3, 0, 6]);
    assert.deepEqual(counterSettle([3, 4, 6], W, -2, 2 * W + 1), [3, 4, 4]);
    assert.deepEqual(counterSettle([3, 4, 6], W, -2, 1 * W + 1), [3, 4, 6]);
    assert.deepEqual(counterSettle([3, 4, 6], W, 2, 1), [3, 6, 6]);
  });

  it('the wait is exact: at now + wait the cost fits, a microsecond before it does not', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 0, max: 1500 }),
        fc.integer({ min: 0, max: 1500 }),
        fc.integer({ min: 0, max: W - 1 }),
        fc.integer({ min: 1, max: 20 }),
        (limit, current, previous, into, cost) => {
          const now = 1_000 * W + into;
          const state: CounterState = [1_000, current, previous];
          const c = { key: 'k', algorithm: 'sliding_window_counter' as const, windowUs: W, limit, cost };
          const r = readCounter(state, now, c);
          if (r.wait === 0) return;
          assert.equal(r.wait, counterWait(now, W, state, limit, cost));
          const later = readCounter(state, now + r.wait, c);
          if (cost > limit) assert.equal(r.wait, W, 'a cost above the limit: a whole window');
          else assert.equal(later.wait, 0, `fits at now + ${r.wait}`);
          if (r.wait > 1 && cost <= limit) assert.ok(readCounter(state, now + r.wait - 1, c).wait > 0, 'not a microsecond before');
        },
      ),
      { numRuns: 2000 },
    );
  });
});
