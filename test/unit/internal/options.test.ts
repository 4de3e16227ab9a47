import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import {
  createHealth,
  createLifecycle,
  createLoadShedder,
  createShutdownGate,
  OptionsError,
  requestDeadline,
  type LifecycleOptions,
} from '../../../src';
import { createDatabase } from '../../../src/app/db/database';
import { nonNegativeInteger, nonNegativeNumber, positiveInteger, positiveNumber } from '../../../src/internal/options';

/** Runs `build` and returns the OptionsError it throws. */
function refusal(build: () => unknown): OptionsError {
  try {
    build();
  } catch (err) {
    assert.ok(err instanceof OptionsError, `expected an OptionsError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a refusal');
}

describe('option checks (src/internal/options.ts)', () => {
  it('refuse with one OptionsError, a TypeError naming the component and the option', () => {
    const err = refusal(() => positiveInteger('widget', 'size', 1.5));
    assert.ok(err instanceof TypeError);
    assert.equal(err.name, 'OptionsError');
    assert.equal(err.component, 'widget');
    assert.equal(err.option, 'size');
    assert.equal(err.message, 'widget: size must be a positive integer, got 1.5');
  });

  it('show strings quoted and lists element by element', () => {
    assert.equal(refusal(() => positiveNumber('w', 'n', '5')).message, 'w: n must be a positive number, got "5"');
    const list = new OptionsError('w', 'names', 'distinct', ['a', 'a']);
    assert.equal(list.message, 'w: names must be distinct, got ["a", "a"]');
    // Two options refused together: both shown by name (a quota's period and periodSeconds).
    const pair = new OptionsError('w', 'period', 'exactly one', { period: 'month', periodSeconds: 1, nested: { a: [1] } });
    assert.equal(pair.message, 'w: period must be exactly one, got { period: "month", periodSeconds: 1, nested: { a: […] } }'); // three levels at most
  });

  it('accept exactly their range and return the value', () => {
    const cases: [string, (c: string, o: string, v: unknown) => number, readonly unknown[], readonly unknown[]][] = [
      ['positiveNumber', positiveNumber, [0.5, 1, 1e9], [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '1', undefined]],
      ['nonNegativeNumber', nonNegativeNumber, [0, 0.5, 7], [-0.1, Number.NaN, Number.POSITIVE_INFINITY, null]],
      ['positiveInteger', positiveInteger, [1, 30_000], [0, 1.5, -1, Number.POSITIVE_INFINITY, '2']],
      ['nonNegativeInteger', nonNegativeInteger, [0, 1, 250], [-1, 0.5, Number.NaN, '0']],
    ];
    for (const [name, check, good, bad] of cases) {
      for (const v of good) assert.equal(check('c', 'o', v), v, `${name} accepts ${String(v)}`);
      for (const v of bad) assert.throws(() => check('c', 'o', v), OptionsError, `${name} refuses ${String(v)}`);
    }
  });

  it('are what every factory refuses a bad option with, naming it', () => {
    // Every lifecycle case is refused before it touches the server or installs a signal handler.
    const lifecycle = (extra: Partial<LifecycleOptions>) => () =>
      createLifecycle({ server: createServer(), gate: createShutdownGate(), ...extra });
    const db = { name: 'db', run: async () => undefined };
    const writeUrl = 'postgres://localhost/x';
    const cases: [() => unknown, string, string][] = [
      [() => createLoadShedder({ maxInFlight: -1 }), 'loadShedder', 'maxInFlight'],
      [() => createLoadShedder({ sampleIntervalMs: 0 }), 'loadShedder', 'sampleIntervalMs'],
      [() => createShutdownGate({ retryAfterSeconds: 0 }), 'shutdownGate', 'retryAfterSeconds'],
      [() => requestDeadline({ timeoutMs: 0 }), 'requestDeadline', 'timeoutMs'],
      [() => createHealth({ checks: [{ ...db, timeoutMs: 0 }] }), 'health', 'check "db" timeoutMs'],
      [() => createHealth({ checks: [db, db] }), 'health', 'checks'],
      [lifecycle({ drainTimeoutMs: 0 }), 'lifecycle', 'drainTimeoutMs'],
      [lifecycle({ delayMs: -1 }), 'lifecycle', 'delayMs'],
      [lifecycle({ cleanup: [{ name: 'redis', run: () => 1, timeoutMs: 0.5 }] }), 'lifecycle', 'cleanup "redis" timeoutMs'],
      [() => createDatabase({ writeUrl, schema: 'Bad-Name' }), 'database', 'schema'],
      [() => createDatabase({ writeUrl, replicaRetryMs: -1 }), 'database', 'replicaRetryMs'],
    ];
    for (const [build, component, option] of cases) {
      const err = refusal(build);
      assert.equal(err.component, component);
      assert.equal(err.option, option);
      assert.ok(err.message.startsWith(`${component}: ${option} must be `), err.message);
    }
  });
});
