import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { contentFingerprint, watchPoliciesFile, type PoliciesWatcher } from '../../../src/app/policies-reload';

describe('watchPoliciesFile (the sample API)', () => {
  let dir: string;
  let path: string;
  let watcher: PoliciesWatcher | undefined;
  const lines: string[] = [];
  const logger = pino(
    { base: null },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString().trim());
        done();
      },
    }),
  );
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rampart-watch-'));
    path = join(dir, 'policies.json');
    writeFileSync(path, '{"a":1}');
    lines.length = 0;
  });
  afterEach(() => {
    watcher?.close();
    watcher = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('tries each content once: the same content again (a signal, the poll, a rewrite of it) is nothing to do', () => {
    const results: string[] = [];
    let applied = 0;
    watcher = watchPoliciesFile({
      path,
      loaded: contentFingerprint(path),
      logger,
      apply: () => {
        applied++;
        if (applied === 2) throw new Error('refused');
        return ['p'];
      },
      onResult: (r) => results.push(r),
      pollMs: 60_000,
    });
    assert.equal(watcher.reload('signal'), 'unchanged');
    assert.match(lines[0] ?? '', /"trigger":"signal".*"msg":"policies file unchanged: nothing to reload"/);
    writeFileSync(path, '{"a":2}');
    assert.equal(watcher.reload('poll'), 'success');
    assert.equal(watcher.reload('signal'), 'unchanged');
    writeFileSync(path, '{"a":3}');
    assert.equal(watcher.reload('watch'), 'error');
    assert.equal(watcher.reload('poll'), 'unchanged', 'a refused content is not tried (and logged) again');
    writeFileSync(path, '{"a":3}');
    assert.equal(watcher.reload('watch'), 'unchanged');
    assert.deepEqual(results, ['success', 'error']);
    assert.equal(applied, 2);
    const refused = lines.filter((l) => l.includes('policies not reloaded'));
    assert.equal(refused.length, 1);
    assert.match(refused[0] ?? '', /"level":40.*RATE_LIMIT_POLICIES_FILE \(.*policies\.json\): refused/);
  });

  it('the poll sees what the directory watch cannot: a change to the file a symlink leads to, in another directory', async () => {
    mkdirSync(join(dir, 'elsewhere'));
    const target = join(dir, 'elsewhere', 'real.json');
    writeFileSync(target, '{"a":1}');
    mkdirSync(join(dir, 'mount'));
    const link = join(dir, 'mount', 'policies.json');
    symlinkSync(target, link);
    watcher = watchPoliciesFile({ path: link, loaded: contentFingerprint(link), logger, apply: () => ['p'], pollMs: 100 });
    await new Promise((r) => setTimeout(r, 150)); // the first poll reads the file: the same content
    assert.equal(lines.length, 0, lines.join('\n'));
    writeFileSync(target, '{"a":2}');
    const deadline = Date.now() + 2_000;
    while (lines.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { msg: string; trigger: string }).trigger),
      ['poll'],
    );
  });

  it('a change in the directory is applied after the debounce, by the watch; close() takes the signal handler, the watch and the poll away', async () => {
    const before = process.listenerCount('SIGHUP');
    const triggers: string[] = [];
    watcher = watchPoliciesFile({
      path,
      loaded: contentFingerprint(path),
      logger,
      apply: () => ['p'],
      pollMs: 60_000,
      debounceMs: 50,
    });
    assert.equal(process.listenerCount('SIGHUP'), before + 1);
    // A rename over the file, as editors and ConfigMaps change it.
    writeFileSync(join(dir, 'next.json'), '{"a":2}');
    renameSync(join(dir, 'next.json'), path);
    const deadline = Date.now() + 2_000;
    while (!lines.some((l) => l.includes('policies reloaded')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const l of lines) if (l.includes('policies reloaded')) triggers.push((JSON.parse(l) as { trigger: string }).trigger);
    assert.deepEqual(triggers, ['watch']);
    watcher.close();
    assert.equal(process.listenerCount('SIGHUP'), before);
    writeFileSync(path, '{"a":3}');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(lines.filter((l) => l.includes('policies reloaded')).length, 1, 'nothing after close()');
    assert.equal(watcher.reload('signal'), 'unchanged');
  });
});
