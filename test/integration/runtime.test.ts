import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';

// What the tests run on: a run meant for Express 4 or Node 24 that quietly ran on Express 5 or
// Node 20 would prove nothing. TEST_EXPRESS (test/support/express-major.ts) and TEST_NODE
// (scripts/with-node.sh) say what was asked for; unset, Express 5 and any Node.
describe('the runtime the tests run on', () => {
  it('is the Express major TEST_EXPRESS names (default 5) for the tests, and Express 5 for the sample API', () => {
    const expected = process.env['TEST_EXPRESS'] === undefined || process.env['TEST_EXPRESS'] === '' ? '5' : process.env['TEST_EXPRESS'];
    const tests = (createRequire(__filename)('express/package.json') as { version: string }).version;
    const sampleApi = (createRequire(join(__dirname, '..', '..', 'src', 'app', 'app.ts'))('express/package.json') as { version: string })
      .version;
    console.log(`      express for the tests: ${tests}; for the sample API: ${sampleApi}`);
    assert.equal(tests.split('.')[0], expected);
    assert.equal(sampleApi.split('.')[0], '5');
  });

  it('is the Node major TEST_NODE names, here and in the processes the tests start (process.execPath, node on the PATH)', () => {
    const child = execFileSync(process.execPath, ['-p', 'process.version'], { encoding: 'utf8' }).trim();
    const onPath = execFileSync('node', ['-p', 'process.version'], { encoding: 'utf8' }).trim();
    console.log(`      node: ${process.version}; a child: ${child}; node on the PATH: ${onPath}`);
    assert.equal(child, process.version);
    const wanted = process.env['TEST_NODE'];
    if (wanted !== undefined && wanted !== '') {
      assert.equal(process.version.split('.')[0], `v${wanted}`);
      assert.equal(onPath, process.version);
    }
  });
});
