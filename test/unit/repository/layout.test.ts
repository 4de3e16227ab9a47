import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ESLint } from 'eslint';
import ts from 'typescript';

const ROOT = join(__dirname, '..', '..', '..');
const SRC = join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/** The files of src/ each file imports or re-exports from (type-only imports included). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, false);
    const targets: string[] = [];
    for (const { fileName } of importedFiles) {
      if (!fileName.startsWith('.')) continue;
      const base = resolve(dirname(file), fileName);
      const target = [`${base}.ts`, join(base, 'index.ts')].find((p) => existsSync(p));
      assert.ok(target !== undefined, `${relative(ROOT, file)} imports ${fileName}, which is not a file of src/`);
      targets.push(target);
    }
    graph.set(file, targets);
  }
  return graph;
}

describe('the source layout', () => {
  it('has no import cycle in src/, not even through a type-only import', () => {
    const graph = importGraph();
    const cycles: string[] = [];
    const done = new Set<string>();
    const path: string[] = [];
    const visit = (file: string) => {
      if (path.includes(file)) {
        cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(ROOT, f)).join(' -> '));
        return;
      }
      if (done.has(file)) return;
      path.push(file);
      for (const next of graph.get(file) ?? []) visit(next);
      path.pop();
      done.add(file);
    };
    for (const file of graph.keys()) visit(file);
    assert.ok(graph.size > 50, `only ${graph.size} files found under src/`);
    assert.deepEqual(cycles, []);
  });

  it('mirrors src/ in test/unit/: each unit test file is named after the source file it tests', () => {
    // test/unit/<dir>/<name>.test.ts, or <name>.<aspect>.test.ts (properties, types, ...), tests
    // src/<dir>/<name>.ts; test/unit/repository/ holds the checks of the repository itself
    // (docs, compose, layout) and mirrors nothing.
    const UNIT = join(ROOT, 'test', 'unit');
    const strays = sourceFiles(UNIT)
      .map((f) => relative(UNIT, f))
      .filter((f) => f.endsWith('.test.ts') && !f.startsWith('repository/'))
      .filter((f) => {
        const [name] = f.slice(0, -'.test.ts'.length).split('/').pop()?.split('.') ?? [];
        return !existsSync(join(SRC, dirname(f), `${name ?? ''}.ts`));
      });
    assert.ok(sourceFiles(UNIT).length > 30, 'test/unit/ found');
    assert.deepEqual(strays, [], 'unit test files with no source file of their name under src/');
  });

  it('keeps every file of src/limit/ under 300 lines', () => {
    const long = sourceFiles(join(SRC, 'limit'))
      .map((f) => ({ file: relative(ROOT, f), lines: readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter((f) => f.lines > 300);
    assert.deepEqual(long, []);
  });

  describe('the dependency rules (npm run lint) refuse a planted forbidden import', function () {
    this.timeout(60_000);
    const eslint = new ESLint({ cwd: ROOT });
    /** The rule ids ESLint reports for `code` written at `file`. */
    async function ruleIds(file: string, code: string): Promise<string[]> {
      const [result] = await eslint.lintText(code, { filePath: join(ROOT, file) });
      return (result?.messages ?? []).map((m) => m.ruleId ?? m.message);
    }
    const RESTRICTED = '@typescript-eslint/no-restricted-imports';
    const planted: readonly (readonly [file: string, code: string, why: string])[] = [
      [
        'src/limit/planted.ts',
        "import { loadConfig } from '../../config';\nexport const x = loadConfig;\n",
        'a capability importing config/',
      ],
      [
        'src/limit/redis/planted.ts',
        "import { createApp } from '../../../app/app';\nexport const x = createApp;\n",
        'a nested capability file importing app/',
      ],
      [
        'src/limit/planted.ts',
        "import { createShutdownGate } from '../../shutdown';\nexport const x = createShutdownGate;\n",
        'the limiter importing shutdown/',
      ],
      [
        'src/limit/planted.ts',
        "import { NodeSDK } from '@opentelemetry/sdk-node';\nexport const x = NodeSDK;\n",
        'the limiter importing the OpenTelemetry SDK',
      ],
      [
        'src/health/planted.ts',
        "import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';\nexport const x = BatchSpanProcessor;\n",
        'a static import of an optional peer',
      ],
      [
        'src/tracing/planted.ts',
        "import { loadTracingConfig } from '../../config/tracing-config';\nexport const x = loadTracingConfig;\n",
        'the tracing capability importing config/ (only its entry point, src/entries/tracing.ts, may)',
      ],
      [
        'src/limit/planted.ts',
        "import { startTracing } from '../../entries/tracing';\nexport const x = startTracing;\n",
        'a capability importing an entry point',
      ],
      [
        'src/app/planted.ts',
        "import { createRateLimiter } from '../../limit';\nexport const x = createRateLimiter;\n",
        'the sample app reaching past src/index.ts',
      ],
    ];
    for (const [file, code, why] of planted) {
      it(`${why} (${file})`, async () => {
        assert.ok((await ruleIds(file, code)).includes(RESTRICTED), `no ${RESTRICTED} report for ${why}`);
      });
    }
    it('and lets the allowed arrows through (a capability using internal/, the app using src/index.ts)', async () => {
      assert.deepEqual(
        await ruleIds(
          'src/limit/planted.ts',
          "import { positiveInteger } from '../../internal/options';\nexport const x = positiveInteger;\n",
        ),
        [],
      );
      assert.deepEqual(
        await ruleIds('src/app/planted.ts', "import { createRateLimiter } from '../../index';\nexport const x = createRateLimiter;\n"),
        [],
      );
    });
  });
});
