import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { childEnv } from '../support/child';
import { freePort } from '../support/redis-server';

const SRC = join(__dirname, '..', '..', 'src');

/** A client pointed at a closed port for `ms`, in a child process: its stderr and its error count. */
async function closedPortClient(withOnError: boolean, ms: number): Promise<{ stderr: string; errors: number }> {
  const port = await freePort();
  const script = `
    const { createRedisClient } = require(${JSON.stringify(SRC)});
    const client = createRedisClient('redis://:s3cretpw@127.0.0.1:${port}', ${withOnError ? '{ onError: () => undefined }' : '{}'});
    let errors = 0;
    client.on('error', () => errors++);
    setTimeout(() => {
      client.disconnect();
      process.stdout.write(JSON.stringify({ errors }));
    }, ${ms});
  `;
  const run = spawnSync(process.execPath, ['--require', require.resolve('tsx/cjs'), '-e', script], {
    env: childEnv({}),
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(run.status, 0, run.stderr);
  return { stderr: run.stderr, errors: (JSON.parse(run.stdout) as { errors: number }).errors };
}

describe('createRedisClient connection errors (a real client, a closed port)', function () {
  this.timeout(30_000);

  it('without onError: one stderr line per interval, never the password, however many errors', async () => {
    const { stderr, errors } = await closedPortClient(false, 2_500);
    assert.ok(errors >= 5, `the client failed ${errors} times: enough to show the bound`);
    const lines = stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0] ?? '', /^rampart redis: .*ECONNREFUSED/);
    assert.ok(!stderr.includes('s3cretpw'));
  });

  it('with onError: nothing on stderr (the caller decides)', async () => {
    const { stderr, errors } = await closedPortClient(true, 1_000);
    assert.ok(errors >= 2);
    assert.equal(stderr, '');
  });
});
