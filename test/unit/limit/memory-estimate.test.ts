import assert from 'node:assert/strict';
import { formatBytes, MEMORY_PER_IDENTITY, MEMORY_WARN_BYTES, memoryPerIdentity } from '../../../src/limit/memory-estimate';

// src/limit/memory-estimate.ts: the per-identity estimate (test/integration/memory-per-identity.test.ts
// holds it against MEMORY USAGE of real keys).
describe('limit/memory-estimate', () => {
  it('pins the measured constants and the warning threshold (docs/rate-limiting.md gives the table)', () => {
    assert.deepEqual(
      { ...MEMORY_PER_IDENTITY },
      {
        integerKeyBytes: 72,
        listpackBaseBytes: 72,
        windowListpackMemberBytes: 32,
        leaseListpackMemberBytes: 30,
        listpackMaxMembers: 128,
        windowSkiplistMemberBytes: 120,
        leaseSkiplistMemberBytes: 116,
      },
    );
    assert.equal(MEMORY_WARN_BYTES, 10_000);
  });

  it('is constant for the one-integer algorithms and grows with the limit for the sorted sets', () => {
    for (const limit of [1, 10, 1000, 10_000_000]) {
      assert.equal(memoryPerIdentity({ algorithm: 'sliding_window_counter', limit, windowSeconds: 60 }), 72);
      assert.equal(memoryPerIdentity({ algorithm: 'quota', limit, period: 'day' }), 72);
      assert.equal(memoryPerIdentity({ algorithm: 'token_bucket', rps: limit, burst: limit }), 72);
    }
    const window = (limit: number) => memoryPerIdentity({ algorithm: 'sliding_window', limit, windowSeconds: 60 });
    assert.deepEqual([window(10), window(100), window(128), window(129), window(1000)], [392, 3272, 4168, 15_480, 120_000]);
    assert.ok(memoryPerIdentity({ algorithm: 'concurrency', limit: 1000 }) > memoryPerIdentity({ algorithm: 'concurrency', limit: 10 }));
    // A tier with a larger limit is what an identity of that tier costs: the largest is given.
    assert.equal(
      memoryPerIdentity({ algorithm: 'sliding_window', limit: 10, windowSeconds: 60, tiers: { pro: { limit: 1000 } } }),
      120_000,
    );
    assert.equal(
      memoryPerIdentity({ algorithm: 'sliding_window', limit: 10, windowSeconds: 60, tiers: { pro: { windowSeconds: 30 } } }),
      392,
    );
  });

  it('formats bytes in powers of 1000', () => {
    assert.deepEqual([72, 448, 3688, 120_000, 1_234_567, 120_000_000_000].map(formatBytes), [
      '72 B',
      '448 B',
      '3.7 KB',
      '120 KB',
      '1.2 MB',
      '120 GB',
    ]);
  });
});
