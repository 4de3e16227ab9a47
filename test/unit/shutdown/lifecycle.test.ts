import assert from 'node:assert/strict';
import { LIFECYCLE_DEFAULTS } from '../../../src';

// The shutdown sequence itself runs in a child process: test/integration/lifecycle-cleanup.test.ts
// and test/e2e/shutdown.test.ts.
describe('lifecycle', () => {
  it('pins its defaults (SHUTDOWN_DELAY_MS and SHUTDOWN_DRAIN_TIMEOUT_MS default to these)', () => {
    assert.deepEqual(LIFECYCLE_DEFAULTS, {
      delayMs: 0,
      drainTimeoutMs: 30_000,
      lingerMs: 250,
      phaseTimeoutMs: 5_000,
      signals: ['SIGTERM', 'SIGINT'],
    });
    assert.ok(Object.isFrozen(LIFECYCLE_DEFAULTS) && Object.isFrozen(LIFECYCLE_DEFAULTS.signals));
  });
});
