import assert from 'node:assert/strict';
import { REDIS_CLIENT_DEFAULTS, stderrErrorReporter } from '../../../src/redis/redis-client';

describe('createRedisClient without onError: the stderr reporter', () => {
  function reporter(secret?: string | readonly string[]) {
    let now = 1_000_000;
    const lines: string[] = [];
    const report = stderrErrorReporter(
      secret,
      REDIS_CLIENT_DEFAULTS.errorLogIntervalMs,
      () => now,
      (l) => lines.push(l),
    );
    return { report, lines, advance: (ms: number) => (now += ms) };
  }

  it('writes the first error at once, then at most one line per errorLogIntervalMs', () => {
    const { report, lines, advance } = reporter();
    const interval = REDIS_CLIENT_DEFAULTS.errorLogIntervalMs;
    report(new Error('connect ECONNREFUSED 127.0.0.1:1'));
    // A client reconnecting every 100 ms: one interval's worth of errors.
    for (let t = 100; t < interval; t += 100) {
      advance(100);
      report(new Error('connect ECONNREFUSED 127.0.0.1:1'));
    }
    assert.deepEqual(lines, ['rampart redis: connect ECONNREFUSED 127.0.0.1:1\n']);
    advance(100);
    report(new Error('connect ECONNREFUSED 127.0.0.1:1'));
    assert.equal(lines.length, 2, 'the next line once the interval has passed');
    advance(interval - 1);
    report(new Error('again'));
    assert.equal(lines.length, 2);
  });

  it('never writes the password, and writes one line whatever the message holds', () => {
    const { report, lines } = reporter('hunter2');
    report(new Error('WRONGPASS for hunter2\nsecond line'));
    assert.deepEqual(lines, ['rampart redis: WRONGPASS for *** second line\n']);
  });

  it("masks every secret it is given (the URL's password and the sentinels' own)", () => {
    const { report, lines } = reporter(['data-pass', 'sentinel-pass']);
    report(new Error('auth data-pass failed; sentinel said sentinel-pass'));
    assert.deepEqual(lines, ['rampart redis: auth *** failed; sentinel said ***\n']);
  });
});
