import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { withTimeout } from '../../../src/internal/with-timeout';

const MODULE = join(__dirname, '..', '..', '..', 'src', 'internal', 'with-timeout.ts');

describe('withTimeout (src/internal/with-timeout.ts)', () => {
  it('settles with the work when it is in time', async () => {
    assert.equal(await withTimeout(Promise.resolve(42), 10_000, () => 0), 42);
    assert.equal(await withTimeout('plain value', 10_000, () => 'late'), 'plain value');
    await assert.rejects(
      withTimeout(Promise.reject(new Error('boom')), 10_000, () => 0),
      /boom/,
    );
  });

  it('leaves nothing to keep the process alive once settled, nor past the limit', function () {
    this.timeout(60_000);
    // In a child process: whether the process exits is the property, and mocha keeps its own timers.
    // The limit is 60 s; a child still running after 20 s is killed and fails the test.
    const exitsAlone = (code: string): void => {
      const script = `const { withTimeout } = require(${JSON.stringify(MODULE)});\n${code}`;
      const child = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
        cwd: join(__dirname, '..', '..', '..'),
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.equal(child.signal, null, `${code}: still running after 20 s`);
      assert.equal(child.status, 0, child.stderr);
    };
    exitsAlone('withTimeout(Promise.resolve(1), 60_000, () => 0).then((v) => v === 1 || process.exit(2));');
    exitsAlone('withTimeout(new Promise(() => undefined), 300, () => 0).then((v) => v === 0 || process.exit(2));');
  });

  it('past the limit, settles with what onTimeout returns, or rejects with what it throws', async () => {
    const never = new Promise<number>(() => undefined);
    assert.equal(await withTimeout(never, 20, () => -1), -1);
    await assert.rejects(
      withTimeout(never, 20, () => {
        throw new Error('x did not finish within 20 ms');
      }),
      /x did not finish within 20 ms/,
    );
  });

  it('calls onTimeout only when the time is up', async () => {
    let called = 0;
    await withTimeout(new Promise((r) => setTimeout(r, 5)), 10_000, () => called++);
    assert.equal(called, 0);
  });
});
