import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../src/entries/cli';

// src/entries/cli.ts: `rampart check-policies FILE...` (as installed, it runs in test/consumer).
describe('rampart check-policies', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-cli-'));
  const write = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };
  function run(...argv: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = main(
      argv,
      (l) => out.push(l),
      (l) => err.push(l),
    );
    return { code, out, err };
  }

  it('exits 0 for the example file, saying what it holds', () => {
    const r = run('check-policies', join(__dirname, '..', '..', '..', 'config', 'policies.example.json'));
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.match(r.out[0] ?? '', /policies\.example\.json: ok \(6 policies with the defaults, 10 surfaces\)/);
  });

  it("prints each policy's Redis memory per identity, and warns where it grows with a large limit", () => {
    const file = write(
      'memory.json',
      JSON.stringify({
        policies: {
          big_window: { algorithm: 'sliding_window', limit: 1000, windowSeconds: 60, key: 'ip' },
          small_window: { algorithm: 'sliding_window', limit: 10, windowSeconds: 60, key: 'ip' },
          counter: { algorithm: 'sliding_window_counter', limit: 1000, windowSeconds: 60, key: 'ip' },
        },
      }),
    );
    const r = run('check-policies', file);
    assert.equal(r.code, 0, r.err.join('\n'));
    const lines = r.out.join('\n');
    assert.match(lines, /^ {2}big_window: sliding_window, about 120 KB of Redis per identity \(120 GB per million\)$/m);
    assert.match(lines, /^ {2}small_window: sliding_window, about 392 B of Redis per identity \(392 MB per million\)$/m);
    assert.match(lines, /^ {2}counter: sliding_window_counter, about 72 B of Redis per identity \(72 MB per million\)$/m);
    const warnings = r.out.filter((l) => l.includes('warning'));
    assert.deepEqual(warnings, [
      '  warning: policy "big_window" keeps about 120 KB per identity, above 10 KB; "sliding_window_counter" keeps the same limit in 72 B (its bound: docs/rate-limiting.md)',
    ]);
  });

  it('prints every mistake with its place and exits 1', () => {
    const bad = write(
      'bad.json',
      JSON.stringify({
        policies: { x: { algorithm: 'token_bucket', rps: -1, burst: 2.5 } },
        surfaces: [{ surfaceId: 's', path: 'v1', policies: ['x'] }],
      }),
    );
    const r = run('check-policies', bad);
    assert.equal(r.code, 1);
    const lines = r.err.join('\n');
    for (const place of ['policies.x.rps', 'policies.x.burst', 'surfaces.0.path'])
      assert.match(lines, new RegExp(`bad\\.json: ${place.replace(/\./g, '\\.')}: `));
    assert.equal(r.err.length, 3, lines);
    const semantic = write(
      'semantic.json',
      JSON.stringify({
        surfaces: [
          { surfaceId: 'a', path: '/a', policies: ['nope'] },
          { surfaceId: 'a', path: '/b', policies: ['public', 'public'] },
          { surfaceId: 'rest', path: '/*', policies: ['public'] },
        ],
      }),
    );
    const s = run('check-policies', semantic);
    assert.equal(s.code, 1);
    assert.deepEqual(
      s.err.map((l) => l.replace(/^.*semantic\.json: /, '')),
      [
        'surfaces.0.policies: unknown policy "nope"',
        'surfaces.1.policies: a policy is listed twice',
        'surfaces.1.surfaceId: "a" is used twice',
      ],
    );
  });

  it('exits 1 for JSON that does not parse, 2 for a missing file or no file, and checks every file given', () => {
    const r = run('check-policies', write('nojson.json', '{policies:'), join(dir, 'absent.json'), write('ok.json', '{}'));
    assert.equal(r.code, 2);
    assert.match(r.err[0] ?? '', /nojson\.json: not valid JSON/);
    assert.match(r.err[1] ?? '', /absent\.json: cannot be read \(ENOENT\)/);
    assert.match(r.out[0] ?? '', /ok\.json: ok/);
    assert.equal(run('check-policies', write('nojson2.json', '[')).code, 1);
    assert.deepEqual(run('check-policies'), { code: 2, out: [], err: ['usage: rampart check-policies FILE...'] });
    assert.equal(run('lint', 'x').code, 2);
  });
});
