import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CONFIG_DEFAULTS, CONFIG_VARIABLES } from '../../../src';
import { docPage, documentationPages } from '../../support/docs';
import { guideLines } from '../../support/migration-example';

const ROOT = join(__dirname, '..', '..', '..');
/**
 * Variables whose default depends on another (RATE_LIMIT_BACKEND: redis when REDIS_URL is set;
 * METRICS_PORT: its port with MODE=prod or METRICS_HOST set, else /metrics on PORT).
 */
const DERIVED_DEFAULTS: readonly string[] = ['RATE_LIMIT_BACKEND', 'METRICS_PORT'];
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
/** The configuration reference, where the variables' table lives. */
const configuration = docPage('configuration.md');
const envExample = readFileSync(join(ROOT, '.env.example'), 'utf8');

/** `| \`NAME\` | default | meaning |` rows of the configuration table (docs/configuration.md). */
function readmeRows(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of configuration.split('\n')) {
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
      assert.ok(rows.has(name), `the configuration table (docs/configuration.md) lacks ${name}`);
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

  for (const file of ['migration-example.ts', 'migration-example-rlf.ts']) {
    it(`a migration guide's final example is the one the tests run (test/support/${file})`, () => {
      const lines = guideLines(readFileSync(join(ROOT, 'test', 'support', file), 'utf8'));
      assert.ok(lines.length >= 10, `${lines.length} lines`);
      const guide = docPage('migrating.md')
        .split('\n')
        .map((l) => l.trim());
      for (const line of lines) assert.ok(guide.includes(line), `docs/migrating.md lacks: ${line}`);
    });
  }

  for (const name of ['websocket', 'queue', 'graphql']) {
    it(`docs/rate-limiting.md's ${name} example of consume() is the one the tests run (test/support/consume-examples.ts)`, () => {
      const lines = guideLines(readFileSync(join(ROOT, 'test', 'support', 'consume-examples.ts'), 'utf8'), name);
      assert.ok(lines.length >= 8, `${lines.length} lines`);
      const page = docPage('rate-limiting.md')
        .split('\n')
        .map((l) => l.trim());
      for (const line of lines) assert.ok(page.includes(line), `docs/rate-limiting.md lacks: ${line}`);
    });
  }

  it('the README is a landing page of at most 250 lines, and every relative link of the documentation resolves', () => {
    assert.ok(readme.split('\n').length <= 250, `README.md has ${readme.split('\n').length} lines`);
    const broken: string[] = [];
    let links = 0;
    for (const page of documentationPages()) {
      const dir = dirname(join(ROOT, page.path));
      // Links outside code spans and fences: [text](target)
      const prose = page.text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
      for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1] as string;
        if (/^(https?:|mailto:)/.test(target)) continue;
        links++;
        const [file, anchor] = target.split('#') as [string, string | undefined];
        const path = file === '' ? join(ROOT, page.path) : join(dir, file);
        if (!existsSync(path)) {
          broken.push(`${page.path}: ${target} (no such file)`);
          continue;
        }
        if (anchor !== undefined && path.endsWith('.md')) {
          const slugs = readFileSync(path, 'utf8')
            .split('\n')
            .filter((l) => /^#{1,6} /.test(l))
            .map((l) =>
              l
                .replace(/^#+ /, '')
                .toLowerCase()
                .replace(/[^a-z0-9 _-]/g, '')
                .replace(/ /g, '-'),
            );
          if (!slugs.includes(anchor)) broken.push(`${page.path}: ${target} (no such heading)`);
        }
      }
    }
    assert.ok(links > 15, `${links} links`);
    assert.deepEqual(broken, []);
  });

  it('names only files that exist: every src/, test/, scripts/ path, and every dist/ file by the source it is built from', () => {
    const missing: string[] = [];
    let paths = 0;
    for (const page of documentationPages()) {
      for (const m of page.text.matchAll(/(?<![\w/.-])(?:\.\/)?((?:src|test|scripts|bench|dist)\/[\w./-]*\w)/g)) {
        const path = m[1] as string;
        // Globs and placeholders name no one file.
        if (/[*<>]|\.\.\./.test(path)) continue;
        paths++;
        const source = path.startsWith('dist/') ? path.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts') : path;
        if (path.startsWith('dist/') && !path.endsWith('.js')) continue;
        if (!existsSync(join(ROOT, source))) missing.push(`${page.path}: ${path}${source === path ? '' : ` (from ${source})`}`);
      }
    }
    assert.ok(paths > 30, `${paths} paths`);
    assert.deepEqual(missing, []);
  });
});
