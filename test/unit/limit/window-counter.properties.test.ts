// Property-based test (fast-check): the sliding window counter's bound against the exact window
// (docs/rate-limiting.md, "Sliding window counter"), on the memory store with a simulated clock
// (the Redis scripts share its arithmetic; the store contract keeps them in step). A failure
// prints the seed and the smallest arrival sequence that breaks it.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createMemoryStore } from '../../../src';

const W = 60_000_000; // a minute, µs

describe('properties', () => {
  describe('sliding window counter', () => {
    // Arrivals as gaps (µs): bursts (0–10 µs), spread (up to a tenth of a window), pauses (up to
    // two windows); each with a cost of 1 to 3. Traffic starts anywhere in a window.
    const gap = fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: W / 10 }), fc.integer({ min: 0, max: 2 * W }));
    const arrivals = fc.array(fc.record({ gap, cost: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 300 });

    it('over any window it admits at most limit + P_tail - P x (1 - f), and so less than twice the limit', async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 0, max: W - 1 }), arrivals, async (limit, phase, seq) => {
          let now = 1_000 * W + phase;
          const store = createMemoryStore({ now: () => now });
          const admitted: { t: number; cost: number }[] = [];
          try {
            for (const { gap: g, cost } of seq) {
              now += g;
              const d = await store.decide([{ key: '{k}', algorithm: 'sliding_window_counter', windowUs: W, limit, cost }]);
              if (!d.allowed) continue;
              admitted.push({ t: now, cost });
              const k = Math.floor(now / W);
              const f = (now - k * W) / W;
              const inWindow = admitted.filter((a) => a.t > now - W).reduce((s, a) => s + a.cost, 0);
              const previous = admitted.filter((a) => Math.floor(a.t / W) === k - 1);
              const p = previous.reduce((s, a) => s + a.cost, 0);
              const pTail = previous.filter((a) => a.t > now - W).reduce((s, a) => s + a.cost, 0);
              const bound = limit + pTail - p * (1 - f);
              assert.ok(inWindow <= bound + 1e-9, `at ${now}: ${inWindow} in the window, bound ${bound} (P ${p}, tail ${pTail}, f ${f})`);
              assert.ok(inWindow <= limit * (1 + f) + 1e-9 && inWindow < 2 * limit, `at ${now}: ${inWindow} of ${limit}`);
            }
          } finally {
            await store.close();
          }
        }),
        { numRuns: 300 },
      );
    });

    it('the bound is reached: the previous window spent at its end lets nearly twice the limit into one window', async () => {
      let now = 1_000 * W + W - 1_000;
      const store = createMemoryStore({ now: () => now });
      const limit = 100;
      let admitted = (await store.decide([{ key: '{k}', algorithm: 'sliding_window_counter', windowUs: W, limit, cost: limit }])).allowed
        ? limit
        : 0;
      // One request every thousandth of the next window, until just before the burst leaves.
      for (let i = 1; i < 999; i++) {
        now = 1_001 * W + (i * W) / 1000;
        if ((await store.decide([{ key: '{k}', algorithm: 'sliding_window_counter', windowUs: W, limit, cost: 1 }])).allowed) admitted++;
      }
      await store.close();
      // All in one sliding window (the burst is 1 ms before the window, the last request 2 ms before the burst leaves it).
      assert.ok(admitted >= 195 && admitted < 200, String(admitted));
    });
  });
});
