import assert from 'node:assert/strict';
import type { Cluster, Redis } from 'ioredis';
import { closeRedisClient, type CleanupPhase, type LifecycleOptions } from '../../../src';

// A type-level test: `npm run typecheck` compiles this file (tsconfig.json includes test/), and
// the lines below are what it checks. The runtime side is test/integration/lifecycle-cleanup.test.ts.
describe('CleanupPhase (types)', () => {
  it('takes `run: () => closeRedisClient(redis)` as it is (a Promise<boolean>), and any function', () => {
    const options = (redis: Redis | Cluster): Pick<LifecycleOptions, 'cleanup'> => ({
      cleanup: [{ name: 'redis', run: () => closeRedisClient(redis) }],
    });
    const phases: CleanupPhase[] = [
      { name: 'sync', run: () => undefined },
      { name: 'value', run: () => 42 },
      { name: 'async', run: async () => undefined },
      // @ts-expect-error `run` is a function
      { name: 'not a function', run: 'redis' },
    ];
    assert.equal(typeof options, 'function');
    assert.equal(phases.length, 4);
  });
});
