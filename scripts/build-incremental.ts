/**
 * `npm start`'s build (its prestart): dist/ brought up to date with src/, compiling only what
 * changed since the last build, and saying what it does on stderr, in one line:
 *
 *   rampart: building dist/ (incremental)... up to date (0.4 s)
 *   rampart: building dist/ (incremental)... done in 6.1 s: 1 of 90 sources compiled
 *   rampart: building dist/ (no build yet: all of src/)... done in 38.0 s: 90 of 90 sources compiled
 *
 * The compiler is `tsc -b tsconfig.incremental.json`: its up-to-date check reads file times and
 * the incremental state (dist/.tsbuildinfo) without compiling, then recompiles what changed. What
 * it cannot see is seen here first: an output missing from dist/ (the state would have tsc emit
 * nothing), so the state is dropped and all of src/ compiled; and, after it, the outputs of a
 * source that was deleted, which tsc leaves behind, removed. A clean build is `npm run build`.
 * A failed build exits non-zero with tsc's errors, so npm runs no stale dist/.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = join(__dirname, '..');
const SRC = join(ROOT, 'src');
const DIST = join(ROOT, 'dist');
const CONFIG = 'tsconfig.incremental.json';
/** Where tsconfig.incremental.json keeps the incremental state. */
const STATE = join(DIST, '.tsbuildinfo');
const TSC = require.resolve('typescript/bin/tsc');

/** Every file under `dir`, as paths relative to it ('/'-separated); none if it does not exist. */
function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split('\\').join('/'));
}

/** An output of tsc and the source it came from: `a/b.js`, `a/b.d.ts`, their maps -> `a/b`. */
const OUTPUT = /^(.*)\.(?:js|d\.ts)(?:\.map)?$/;
const sourceOf = (output: string) => OUTPUT.exec(output)?.[1];
const hasSource = (base: string) => existsSync(join(SRC, `${base}.ts`)) || existsSync(join(SRC, `${base}.tsx`));

const mtimes = () => new Map(files(DIST).map((f) => [f, statSync(join(DIST, f)).mtimeMs]));
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;

/** Removes the outputs whose source is gone, then the folders that left empty; returns how many files. */
function pruneStale(): number {
  let removed = 0;
  for (const output of files(DIST)) {
    const base = sourceOf(output);
    if (base === undefined || hasSource(base)) continue;
    unlinkSync(join(DIST, output));
    removed++;
  }
  if (removed > 0) {
    const dirs = readdirSync(DIST, { recursive: true, withFileTypes: true });
    // Deepest first, so a folder whose only content was an emptied folder goes too.
    for (const dir of dirs
      .filter((e) => e.isDirectory())
      .map((e) => join(e.parentPath, e.name))
      .sort((a, b) => b.length - a.length)) {
      if (readdirSync(dir).length === 0) rmdirSync(dir);
    }
  }
  return removed;
}

/**
 * Why this build compiles what it does. Drops the state when dist/ lacks the output of a source
 * the state has seen (one not changed since it was written; a newer source is tsc's to compile).
 */
function plan(sources: readonly string[]): string {
  if (!existsSync(DIST)) return 'no build yet: all of src/';
  if (!existsSync(STATE)) return 'no incremental state in dist/: all of src/';
  const written = statSync(STATE).mtimeMs;
  const output = (source: string) => source.replace(/\.tsx?$/, '.js');
  const missing = sources.find((s) => statSync(join(SRC, s)).mtimeMs <= written && !existsSync(join(DIST, output(s))));
  if (missing === undefined) return 'incremental';
  unlinkSync(STATE);
  return `dist/${output(missing)} is missing: all of src/`;
}

function tsc(): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const args = [TSC, '-b', CONFIG, ...(process.stderr.isTTY ? ['--pretty'] : [])];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', (err) => resolve({ code: 1, output: err.message }));
    child.once('close', (code, signal) => resolve({ code: code ?? (signal === null ? 1 : 128), output }));
  });
}

async function main(): Promise<number> {
  const started = performance.now();
  const sources = files(SRC).filter((f) => /\.tsx?$/.test(f) && !f.endsWith('.d.ts'));
  const why = plan(sources);
  process.stderr.write(`rampart: building dist/ (${why})... `);
  const before = mtimes();
  const { code, output } = await tsc();
  if (code !== 0) {
    process.stderr.write(`failed after ${seconds(started)} (tsc -b ${CONFIG}):\n${output.trimEnd()}\n`);
    return code;
  }
  const compiled = [...mtimes()].filter(([f, t]) => f.endsWith('.js') && before.get(f) !== t).length;
  const pruned = pruneStale();
  const done = [
    ...(compiled === 0 ? [] : [`${compiled} of ${sources.length} sources compiled`]),
    ...(pruned === 0 ? [] : [`${pruned} file${pruned === 1 ? '' : 's'} of deleted sources removed`]),
  ];
  process.stderr.write(done.length === 0 ? `up to date (${seconds(started)})\n` : `done in ${seconds(started)}: ${done.join(', ')}\n`);
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`\nrampart: build failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
