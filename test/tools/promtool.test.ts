import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';

// promtool on the compose rules (part of `npm run test:all`; Debian package prometheus, which
// .ci/run installs). The checks that need no tool are in test/unit/repository/prometheus-rules.test.ts.
const ROOT = join(__dirname, '..', '..');
const DIR = join(ROOT, 'compose', 'prometheus');
const RULES = join(DIR, 'rampart.rules.yml');
const rules = (parse(readFileSync(RULES, 'utf8')) as { groups: { rules: unknown[] }[] }).groups.flatMap((g) => g.rules);

describe('promtool on the compose alert rules', function () {
  before(() => {
    const probe = spawnSync('promtool', ['--version']);
    assert.equal(probe.error, undefined, 'promtool is not on the PATH: install it (Debian: apt-get install prometheus) to run this suite');
  });

  it('promtool check rules: the rules file is valid', () => {
    const out = execFileSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    assert.match(out, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  it('promtool check config: the compose Prometheus configuration is valid and loads the rules', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-prom-'));
    try {
      // As mounted in compose: the rules file at /etc/prometheus/rampart.rules.yml.
      const config = readFileSync(join(DIR, 'prometheus.yml'), 'utf8').replace('/etc/prometheus/rampart.rules.yml', RULES);
      writeFileSync(join(dir, 'prometheus.yml'), config);
      const out = execFileSync('promtool', ['check', 'config', join(dir, 'prometheus.yml')], { encoding: 'utf8' });
      assert.match(out, /is valid prometheus config file syntax/);
      assert.match(out, new RegExp(`SUCCESS: ${rules.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('promtool test rules: every alert fires when it should and stays quiet when it should not', function () {
    // promtool evaluates hours of series: 18 s on a quiet 2-core machine, longer on a busy one.
    this.timeout(180_000);
    const r = spawnSync('promtool', ['test', 'rules', 'rampart.test.yml'], { cwd: join(DIR, 'tests'), encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /SUCCESS/);
  });
});
