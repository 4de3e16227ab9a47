import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CIRCUIT_PRESETS, createCircuitBreaker, DependencyUnavailableError, type CircuitState } from '../../../src';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ok = () => Promise.resolve('ok');
const boom = () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }));

describe('circuit breakers (createCircuitBreaker)', () => {
  it("pins the presets (the production guide's numbers)", () => {
    const common = { volumeThreshold: 10, rollingWindowMs: 10_000, timeoutMs: 2_000 };
    assert.deepEqual(CIRCUIT_PRESETS, {
      conservative: { ...common, failureThreshold: 3, errorThresholdPercentage: 10, resetTimeoutMs: 300_000, halfOpenCalls: 1 },
      balanced: { ...common, failureThreshold: 5, errorThresholdPercentage: 50, resetTimeoutMs: 60_000, halfOpenCalls: 3 },
      tolerant: { ...common, failureThreshold: 10, errorThresholdPercentage: 70, resetTimeoutMs: 30_000, halfOpenCalls: 5 },
    });
    const b = createCircuitBreaker({ name: 'db', preset: 'tolerant', resetTimeoutMs: 500 });
    assert.deepEqual(b.numbers, { ...CIRCUIT_PRESETS.tolerant, resetTimeoutMs: 500 });
    b.close();
  });

  it('refuses bad options, naming them', () => {
    assert.throws(() => createCircuitBreaker({ name: 'Has Spaces' }), /circuitBreaker: name must be a match of/);
    assert.throws(
      () => createCircuitBreaker({ name: 'db', preset: 'reckless' as never }),
      /circuitBreaker: preset must be "conservative", "balanced" or "tolerant"/,
    );
    assert.throws(
      () => createCircuitBreaker({ name: 'db', failureThreshold: 0 }),
      /circuitBreaker: failureThreshold must be a positive integer/,
    );
    assert.throws(
      () => createCircuitBreaker({ name: 'db', errorThresholdPercentage: 101 }),
      /errorThresholdPercentage must be a percentage from 1 to 100/,
    );
  });

  it('opens after failureThreshold consecutive failures, refuses at once with EOPENBREAKER and the rest of the open time, then half-opens and closes on a success', async () => {
    const seen: [CircuitState, CircuitState | undefined][] = [];
    const b = createCircuitBreaker({
      name: 'db_write',
      failureThreshold: 3,
      resetTimeoutMs: 300,
      observer: { circuitChanged: (_n, s, from) => seen.push([s, from]) },
    });
    let called = 0;
    const counted = () => {
      called++;
      return boom();
    };
    for (let i = 0; i < 3; i++) await assert.rejects(b.run(counted), /ECONNREFUSED/);
    assert.equal(b.state, 'OPEN');
    const refused = await b.run(counted).catch((e: unknown) => e);
    assert.ok(refused instanceof DependencyUnavailableError);
    assert.equal(refused.code, 'EOPENBREAKER');
    assert.equal(refused.dependency, 'db_write');
    assert.equal(refused.retryAfterMs, 1000, 'at least a second');
    assert.equal(called, 3, 'an open breaker never calls');
    await sleep(350);
    assert.equal(b.state, 'HALF_OPEN', 'half-open when the open time is over, without a call');
    assert.equal(await b.run(ok), 'ok');
    assert.equal(b.state, 'CLOSED');
    assert.deepEqual(seen, [
      ['CLOSED', undefined],
      ['OPEN', 'CLOSED'],
      ['HALF_OPEN', 'OPEN'],
      ['CLOSED', 'HALF_OPEN'],
    ]);
    b.close();
  });

  it('half-open: lets halfOpenCalls trial calls through at once and refuses the rest; a failed trial opens it again', async () => {
    const b = createCircuitBreaker({ name: 'api', failureThreshold: 1, resetTimeoutMs: 100, halfOpenCalls: 2 });
    await assert.rejects(b.run(boom));
    await sleep(150);
    let release: () => void = () => undefined;
    const slow = () => new Promise<string>((resolve) => (release = () => resolve('late')));
    const first = b.run(slow);
    const second = b.run(() => new Promise<string>(() => undefined)).catch((e: unknown) => e);
    const third = await b.run(ok).catch((e: unknown) => e);
    assert.ok(third instanceof DependencyUnavailableError && third.code === 'EOPENBREAKER', 'the third call is refused');
    release();
    assert.equal(await first, 'late');
    assert.equal(b.state, 'CLOSED');
    b.close();
    void second;
    const c = createCircuitBreaker({ name: 'api2', failureThreshold: 1, resetTimeoutMs: 100, halfOpenCalls: 3 });
    await assert.rejects(c.run(boom));
    await sleep(150);
    await assert.rejects(c.run(boom));
    assert.equal(c.state, 'OPEN', 'a failed trial opens it again');
    c.close();
  });

  it('a call slower than timeoutMs is answered ETIMEDOUT then and counts as a failure (a partition gives only silence)', async () => {
    const b = createCircuitBreaker({ name: 'db', timeoutMs: 50, failureThreshold: 2, resetTimeoutMs: 10_000 });
    const silence = () => new Promise<never>(() => undefined);
    for (let i = 0; i < 2; i++) {
      const err = await b.run(silence).catch((e: unknown) => e);
      assert.ok(err instanceof DependencyUnavailableError && err.code === 'ETIMEDOUT', String(err));
    }
    assert.equal(b.state, 'OPEN');
    b.close();
  });

  it("a call's own mistake (isFailure false) is no failure: it never opens the breaker", async () => {
    const b = createCircuitBreaker({ name: 'db', failureThreshold: 2, isFailure: (e) => (e as { code?: string }).code === 'ECONNREFUSED' });
    const constraint = () => Promise.reject(Object.assign(new Error('duplicate key'), { code: '23505' }));
    for (let i = 0; i < 10; i++) await assert.rejects(b.run(constraint), /duplicate key/);
    assert.equal(b.state, 'CLOSED');
    b.close();
  });

  it('opens on whichever comes first: consecutive failures, or the failure rate over the window once it holds volumeThreshold calls (fast-check against a model)', async () => {
    const seed = Number(process.env['FC_SEED'] ?? Date.now() % 1_000_000);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 99 }),
        fc.integer({ min: 1, max: 20 }),
        async (outcomes, failureThreshold, pct, volume) => {
          const b = createCircuitBreaker({
            name: 'm',
            failureThreshold,
            errorThresholdPercentage: pct,
            volumeThreshold: volume,
            resetTimeoutMs: 60_000,
          });
          // The model: the call that opens it, if any.
          let consecutive = 0;
          let calls = 0;
          let failures = 0;
          let opensAt = -1;
          outcomes.forEach((failed, i) => {
            if (opensAt !== -1) return;
            calls++;
            if (failed) {
              failures++;
              consecutive++;
              if (consecutive >= failureThreshold || (calls >= volume && (failures / calls) * 100 > pct)) opensAt = i;
            } else consecutive = 0;
          });
          for (let i = 0; i < outcomes.length; i++) {
            const err = await b.run(outcomes[i] === true ? boom : ok).catch((e: unknown) => e);
            if (opensAt !== -1 && i > opensAt)
              assert.ok(err instanceof DependencyUnavailableError, `call ${i} refused once open (opened at ${opensAt})`);
            assert.equal(b.state, opensAt !== -1 && i >= opensAt ? 'OPEN' : 'CLOSED', `after call ${i}`);
          }
          b.close();
        },
      ),
      { seed, numRuns: 200 },
    );
  });
});
