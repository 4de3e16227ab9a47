import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_DEFAULTS, CONFIG_VARIABLES } from '../../src';

const ROOT = join(__dirname, '..', '..');
/**
 * Variables whose default depends on another (RATE_LIMIT_BACKEND: redis when REDIS_URL is set;
 * METRICS_PORT: its port with MODE=prod or METRICS_HOST set, else /metrics on PORT).
 */
const DERIVED_DEFAULTS: readonly string[] = ['RATE_LIMIT_BACKEND', 'METRICS_PORT'];
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const envExample = readFileSync(join(ROOT, '.env.example'), 'utf8');

/** `| \`NAME\` | default | meaning |` rows of the README's configuration table. */
function readmeRows(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of readme.split('\n')) {
    const m = /^\| `([A-Z][A-Z0-9_]+)` \| ([^|]*) \|/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) rows.set(m[1], m[2].trim());
  }
  return rows;
}

function envExampleValues(): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of envExample.split('\n')) {
    const m = /^([A-Z][A-Z0-9_]+)=(.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) values.set(m[1], m[2]);
  }
  return values;
}

describe('the documentation agrees with the code', () => {
  it('the README table and .env.example list every variable, and nothing else', () => {
    const rows = readmeRows();
    const env = envExampleValues();
    for (const name of CONFIG_VARIABLES) {
      assert.ok(rows.has(name), `README configuration table lacks ${name}`);
      assert.ok(env.has(name), `.env.example lacks ${name}`);
    }
    for (const name of env.keys()) assert.ok(CONFIG_VARIABLES.includes(name), `.env.example names unknown ${name}`);
  });

  it('repeats every default exactly as CONFIG_DEFAULTS holds it', () => {
    const rows = readmeRows();
    const env = envExampleValues();
    for (const [name, value] of Object.entries(CONFIG_DEFAULTS)) {
      assert.equal(rows.get(name), `\`${String(value)}\``, `README default of ${name}`);
      // A default that depends on another variable is left empty in .env.example, so that a
      // copy with that other variable filled in takes the derived value.
      const derived = DERIVED_DEFAULTS.includes(name);
      assert.equal(env.get(name), derived ? '' : String(value), `.env.example default of ${name}`);
    }
    for (const name of CONFIG_VARIABLES) {
      if (name in CONFIG_DEFAULTS) continue;
      assert.equal(env.get(name), '', `.env.example gives ${name} no value (it has no default)`);
    }
  });

  it('the README usage example is the one the tests run (test/support/readme-example.ts)', () => {
    const example = readFileSync(join(ROOT, 'test', 'support', 'readme-example.ts'), 'utf8');
    const lines = example
      .split('\n')
      .filter((l) => l.endsWith('// README'))
      .map((l) => l.replace(/\s*\/\/ README$/, '').trim());
    assert.ok(lines.length >= 5);
    const readmeLines = readme.split('\n').map((l) => l.replace(/\s+\/\/.*$/, '').trim());
    for (const line of lines) assert.ok(readmeLines.includes(line), `README lacks: ${line}`);
  });
});
