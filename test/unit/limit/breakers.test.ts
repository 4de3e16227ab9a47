import assert from 'node:assert/strict';
import CircuitBreaker from 'opossum';
import { breakerOptions, createBreakerPool } from '../../../src/limit/breakers';
import { RATE_LIMITER_DEFAULTS, type BreakerState } from '../../../src/limit/options';
import { createMemoryStore, type Check, type Decision, type DecideOptions, type RateLimitStore } from '../../../src';

// The limiter's parts on their own: src/limit/deny-cache.ts and src/limit/breakers.ts (the
// middleware that wires them is tested through HTTP in rate-limiter.test.ts).
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const check = (key: string): Check => ({ key, cost: 1, algorithm: 'token_bucket', intervalUs: 1_000_000, burst: 1 });

/** A store whose calls fail, hang or answer, as the test says (a RateLimitStore like any user's). */
function scriptedStore(behaviour: { mode: 'fail' | 'hang' | 'ok' | 'crossslot' }): RateLimitStore & { calls: number } {
  const memory = createMemoryStore();
  const store = {
    name: 'scripted',
    calls: 0,
    decide(checks: readonly Check[]): Promise<Decision> {
      store.calls++;
      if (behaviour.mode === 'fail') return Promise.reject(new Error('connection refused'));
      if (behaviour.mode === 'crossslot') return Promise.reject(new Error("CROSSSLOT Keys in request don't hash to the same slot"));
      if (behaviour.mode === 'hang') return new Promise(() => undefined);
      return memory.decide(checks);
    },
    close: () => memory.close(),
  };
  return store;
}

describe('breaker pool', () => {
  const breaker = { ...RATE_LIMITER_DEFAULTS.breaker, volumeThreshold: 3, resetTimeoutMs: 200 };

  it('opens after failures, fails fast while open, half-opens after resetTimeoutMs and closes on a success; reports each change', async () => {
    const behaviour: { mode: 'fail' | 'hang' | 'ok' | 'crossslot' } = { mode: 'fail' };
    const store = scriptedStore(behaviour);
    const seen: BreakerState[] = [];
    const pool = createBreakerPool({ store, deadlineMs: 100, breaker, onStateChange: (s) => seen.push(s) });
    try {
      for (let i = 0; i < 3; i++) await assert.rejects(pool.decide([check('k')]), /connection refused/);
      assert.equal(pool.state, 'OPEN');
      const calls = store.calls;
      await assert.rejects(pool.decide([check('k')]), (err: Error & { code?: string }) => err.code === 'EOPENBREAKER');
      assert.equal(store.calls, calls, 'an open breaker does not call the store');
      await sleep(250);
      assert.equal(pool.state, 'HALF_OPEN');
      behaviour.mode = 'ok';
      assert.equal((await pool.decide([check('k')])).allowed, true);
      assert.equal(pool.state, 'CLOSED');
      assert.deepEqual(seen, ['OPEN', 'HALF_OPEN', 'CLOSED']);
    } finally {
      pool.close();
      await store.close();
    }
  });

  it("tells the store of the deadline: abandoned() turns true, and its signal (read before or only after) aborts with the deadline's error", async () => {
    const seen: DecideOptions[] = [];
    const hanging: RateLimitStore = {
      name: 'hanging',
      decide(_checks, options) {
        if (options !== undefined) seen.push(options);
        return new Promise(() => undefined);
      },
      close: () => Promise.resolve(),
    };
    const pool = createBreakerPool({ store: hanging, deadlineMs: 30, breaker });
    try {
      const early = pool.decide([check('k')]);
      const late = pool.decide([check('k')]);
      const [first, second] = seen as [DecideOptions, DecideOptions];
      assert.equal(typeof first.abandoned, 'function');
      assert.equal(first.abandoned?.(), false, 'not abandoned before the deadline');
      const signal = first.signal as AbortSignal;
      assert.ok(signal instanceof AbortSignal && !signal.aborted);
      const reasons: unknown[] = [];
      signal.addEventListener('abort', () => reasons.push(signal.reason));
      const timedOut = (err: Error & { code?: string }) => err.code === 'ETIMEDOUT';
      await assert.rejects(early, timedOut);
      await assert.rejects(late, timedOut);
      assert.equal(first.abandoned?.(), true);
      assert.equal(reasons.length, 1, 'a listener added before the deadline heard it once');
      assert.equal((reasons[0] as Error & { code?: string }).code, 'ETIMEDOUT');
      assert.equal(second.abandoned?.(), true);
      const readAfter = second.signal as AbortSignal;
      assert.ok(readAfter.aborted, 'a signal first read after the deadline is already aborted');
      assert.equal((readAfter.reason as Error & { code?: string }).code, 'ETIMEDOUT');
      assert.equal(second.signal, readAfter, 'the same signal each time');
    } finally {
      pool.close();
    }
  });

  it("its breakers keep no call latencies for percentiles and take no snapshots (a timer sorted the whole window's latencies every second)", async () => {
    const counting = new CircuitBreaker((x: number) => Promise.resolve(x), breakerOptions(100, RATE_LIMITER_DEFAULTS.breaker));
    const snapshotting = new CircuitBreaker((x: number) => Promise.resolve(x), breakerOptions(100, { ...breaker, rollingWindowMs: 100 }));
    try {
      let snapshots = 0;
      snapshotting.status.on('snapshot', () => snapshots++);
      for (let i = 0; i < 200; i++) await counting.fire(i);
      assert.equal(counting.stats.successes, 200);
      assert.deepEqual(counting.stats.latencyTimes, [], 'no latencies gathered for percentiles');
      await sleep(80); // eight bucket intervals of the 100 ms window
      assert.equal(snapshots, 0);
    } finally {
      counting.shutdown();
      snapshotting.shutdown();
    }
  });

  it('a call past the deadline fails with ETIMEDOUT; a misuse (CROSSSLOT) never counts against the breaker', async () => {
    const behaviour: { mode: 'fail' | 'hang' | 'ok' | 'crossslot' } = { mode: 'hang' };
    const store = scriptedStore(behaviour);
    const pool = createBreakerPool({ store, deadlineMs: 50, breaker });
    try {
      // The store never answers: only the deadline can end the call (ETIMEDOUT).
      await assert.rejects(pool.decide([check('k')]), (err: Error & { code?: string }) => err.code === 'ETIMEDOUT');
      behaviour.mode = 'crossslot';
      for (let i = 0; i < 10; i++) await assert.rejects(pool.decide([check('k')]), /CROSSSLOT/);
      assert.equal(pool.state, 'CLOSED', '10 misuses did not open it');
    } finally {
      pool.close();
      await store.close();
    }
  });
});
