// `npm start` as an operator runs it, in a copy of the repository (its sources, configuration and
// build script, the repository's node_modules linked): the copy's dist/ is built and rebuilt here,
// and the repository's own dist/, which other tests pack, is never touched.
//
// The first start builds all of src/ and says so; a second one compiles nothing (dist/ untouched)
// and says "up to date"; an edited source is recompiled alone; the outputs of a deleted source go.
// A SIGTERM sent to npm reaches the server, which drains a request in flight and exits 0 (npm
// with it), leaving no orphan. The start script reads a `.env` in its working directory, and
// says nothing when there is none. Behaviour only: no duration is asserted.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { waitUntil } from '../../scripts/wait';
import { childEnv } from '../support/child';
import { freePort } from '../support/redis-server';
import { metricValue } from '../support/sample-child';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');

/** What `npm start` needs of the repository: copied, but node_modules (linked). */
const COPIED = [
  'package.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'tsconfig.incremental.json',
  'src',
  'config',
  'scripts/build-incremental.ts',
];

/** A build of all of src/ (tsc, on a busy machine) then the server's start. */
const FIRST_START_MS = 300_000;
/** An incremental build then the server's start. */
const START_MS = 120_000;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The direct children of `pid`, from /proc (the machine's `ps` may not be there). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Every file under `dir` with its modification time. */
function mtimes(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out[relative(dir, join(e.parentPath, e.name))] = statSync(join(e.parentPath, e.name)).mtimeMs;
  }
  return out;
}

/** The build script's line: `rampart: building dist/ (why)... outcome`. */
function buildLine(out: string): string {
  const lines = out.split('\n').filter((l) => l.startsWith('rampart: building dist/'));
  assert.equal(lines.length, 1, `one build line:\n${out.slice(-3000)}`);
  return lines[0] as string;
}

type Exit = { code: number | null; signal: NodeJS.Signals | null };

interface Started {
  readonly npm: ChildProcess;
  readonly port: number;
  output(): string;
  /** SIGTERM to npm; resolves with how npm exited. */
  stop(): Promise<Exit>;
}

/** Runs `check` on a started server, then stops it whatever happened; resolves with how npm exited. */
async function thenStop(started: Started, check: () => Promise<void>): Promise<Exit> {
  try {
    await check();
  } finally {
    await started.stop();
  }
  return started.stop();
}

/** SIGKILL to the process group of a detached child (npm and what runs under it), if any is left. */
function killGroup(child: ChildProcess): void {
  try {
    process.kill(-(child.pid as number), 'SIGKILL');
  } catch {
    // already gone
  }
}

/** `npm start` in `cwd`, resolved once the server logs `listening` (rejects if npm exits first). */
async function npmStart(cwd: string, env: Record<string, string>, timeoutMs: number): Promise<Started> {
  // Its own process group: a failed start is killed whole (npm, and the server it execs under it),
  // never leaving a server orphaned and serving.
  const npm = spawn('npm', ['start'], { cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  npm.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  npm.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<Exit>((resolve) => npm.once('exit', (code, signal) => resolve({ code, signal })));
  const listening = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{') && l.includes('"msg":"listening"'))
      .map((l) => (JSON.parse(l) as { port: number }).port)[0];
  try {
    await waitUntil(
      'npm start to log listening',
      async () => {
        if (npm.exitCode !== null || npm.signalCode !== null) throw new Error(`npm exited before listening:\n${out.slice(-3000)}`);
        return listening() !== undefined;
      },
      timeoutMs,
      100,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${out.slice(-3000)}`);
    });
  } catch (err) {
    killGroup(npm);
    throw err;
  }
  return {
    npm,
    port: listening() as number,
    output: () => out,
    async stop() {
      if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGTERM');
      return exited;
    },
  };
}

describe('npm start (a real npm in a copy of the repository, a real SIGTERM)', function () {
  this.timeout(START_MS + 30_000);
  let dir: string;
  const dist = () => join(dir, 'dist');

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rampart-npm-start-'));
    for (const path of COPIED) {
      mkdirSync(join(dir, path, '..'), { recursive: true });
      cpSync(join(ROOT, path), join(dir, path), { recursive: true });
    }
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('with no dist/, builds all of src/, saying so in one line, and serves; no ".env not found" line', async function () {
    this.timeout(FIRST_START_MS + 30_000);
    const started = await npmStart(dir, { PORT: '0', LOG_LEVEL: 'info' }, FIRST_START_MS);
    const exit = await thenStop(started, async () => {
      const line = buildLine(started.output());
      console.log(`      ${line}`);
      assert.match(line, /^rampart: building dist\/ \(no build yet: all of src\/\)\.\.\. done in \d+\.\d s: (\d+) of \1 sources compiled$/);
      // Node 20's --env-file-if-exists said ".env not found. Continuing without it."
      assert.doesNotMatch(started.output(), /not found|continuing without/i, 'nothing said about a .env that is not there');
      assert.equal((await fetch(`http://127.0.0.1:${started.port}/health/live`)).status, 200);
    });
    assert.deepEqual(exit, { code: 0, signal: null }, started.output().slice(-2000));
  });

  it('a second start compiles nothing: the line says up to date, no file of dist/ is written', async () => {
    const before = mtimes(dist());
    const started = await npmStart(dir, { PORT: '0' }, START_MS);
    const exit = await thenStop(started, async () => {
      const line = buildLine(started.output());
      console.log(`      ${line}`);
      assert.match(line, /^rampart: building dist\/ \(incremental\)\.\.\. up to date \(\d+\.\d s\)$/);
      assert.deepEqual(mtimes(dist()), before);
    });
    assert.deepEqual(exit, { code: 0, signal: null }, started.output().slice(-2000));
  });

  it('an edited source is recompiled, alone, and the server runs the edit', async () => {
    const before = mtimes(dist());
    const mark = `edited by npm-start.test.ts ${process.pid}`;
    // A comment: kept in the output, and main.ts's declarations (so its dependents) unchanged.
    appendFileSync(join(dir, 'src', 'app', 'main.ts'), `// ${mark}\n`);
    const started = await npmStart(dir, { PORT: '0' }, START_MS);
    const exit = await thenStop(started, async () => {
      const line = buildLine(started.output());
      console.log(`      ${line}`);
      assert.match(line, /^rampart: building dist\/ \(incremental\)\.\.\. done in \d+\.\d s: 1 of \d+ sources compiled$/);
      assert.ok(readFileSync(join(dist(), 'app', 'main.js'), 'utf8').includes(mark), 'dist/app/main.js is the edited source');
      const after = mtimes(dist());
      const written = Object.keys(after).filter((f) => after[f] !== before[f]);
      assert.ok(written.includes('app/main.js'), written.join(' '));
      const mainOnly = new Set(['.tsbuildinfo', 'app/main.js', 'app/main.js.map', 'app/main.d.ts']);
      assert.deepEqual(
        written.filter((f) => !mainOnly.has(f)),
        [],
        "nothing but main.ts's outputs (and the state) written",
      );
    });
    assert.deepEqual(exit, { code: 0, signal: null }, started.output().slice(-2000));
  });

  it("the outputs of a deleted source are removed from dist/ (npm start's build, alone)", async () => {
    const prestart = async () => {
      const { stderr } = await run('npm', ['run', '-s', 'prestart'], { cwd: dir, env: childEnv({}) });
      return buildLine(stderr);
    };
    writeFileSync(join(dir, 'src', 'app', 'deleted-later.ts'), 'export const deletedLater = 1;\n');
    assert.match(await prestart(), /done in \d+\.\d s: 1 of \d+ sources compiled$/);
    const outputs = ['deleted-later.js', 'deleted-later.d.ts', 'deleted-later.js.map'];
    for (const f of outputs) assert.ok(statSync(join(dist(), 'app', f)).isFile(), f);

    rmSync(join(dir, 'src', 'app', 'deleted-later.ts'));
    const line = await prestart();
    console.log(`      ${line}`);
    assert.match(line, /done in \d+\.\d s: 3 files of deleted sources removed$/);
    assert.deepEqual(
      readdirSync(join(dist(), 'app')).filter((f) => f.startsWith('deleted-later')),
      [],
    );
  });

  it('SIGTERM to npm reaches the server: the request in flight completes, the server exits 0, npm exits 0, no orphan', async () => {
    const started = await npmStart(dir, { PORT: '0', METRICS_PORT: '0', LOG_LEVEL: 'info' }, START_MS);
    const { npm, port } = started;
    let server = 0;
    try {
      // npm's child is the server itself (exec), not a shell waiting on it.
      const kids = childrenOf(npm.pid as number);
      assert.equal(kids.length, 1, `npm has one child: ${kids.join(',')}`);
      server = kids[0] as number;
      assert.match(readFileSync(`/proc/${server}/cmdline`, 'utf8').replace(/\0/g, ' '), /^node .*dist\/app\/main\.js/);

      const slow = fetch(`http://127.0.0.1:${port}/v1/slow?ms=3000`).then(async (r) => ({ status: r.status, body: await r.text() }));
      // The signal goes once the request is in flight (the gate counts it), not after a guessed time.
      const metricsPort = started
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{') && l.includes('"msg":"listening"'))
        .map((l) => (JSON.parse(l) as { metricsPort?: number }).metricsPort)[0];
      assert.ok(metricsPort !== undefined, 'the listening line names the metrics port');
      await waitUntil(
        'the slow request to be in flight',
        async () => (await metricValue(`http://127.0.0.1:${metricsPort}`, 'rampart_http_requests_in_flight')) >= 1,
        20_000,
        20,
      );
      const end = started.stop();
      const answered = await slow;
      assert.equal(answered.status, 200, answered.body);
      assert.deepEqual(await end, { code: 0, signal: null }, started.output().slice(-2000));
      await waitUntil('the server process to be gone', async () => !alive(server), 5_000, 20);
      const out = started.output();
      assert.match(out, /"msg":"shutdown complete"/);
      assert.match(out, /"exitCode":0/);
      const complete = out.split('\n').find((l) => l.includes('"msg":"shutdown complete"'));
      console.log(`      ${complete?.slice(0, 300)}`);
    } finally {
      killGroup(npm);
      if (server !== 0 && alive(server)) process.kill(server, 'SIGKILL');
    }
  });

  it('reads .env from its working directory (and the environment wins over it)', async () => {
    const port = await freePort();
    writeFileSync(join(dir, '.env'), `# as copied from .env.example, then edited\nPORT=${port}\nLOG_LEVEL=warn\nMODE=dev\n`);
    try {
      // Started means "listening" was logged, at info: LOG_LEVEL=info from the environment won over warn from .env.
      const started = await npmStart(dir, { LOG_LEVEL: 'info' }, START_MS);
      const exit = await thenStop(started, async () => {
        assert.equal(started.port, port, 'the port from .env');
        assert.equal((await fetch(`http://127.0.0.1:${port}/health/live`)).status, 200);
      });
      assert.deepEqual(exit, { code: 0, signal: null }, started.output().slice(-2000));
    } finally {
      rmSync(join(dir, '.env'), { force: true });
    }
  });

  it('npm pack takes dist/ without the incremental state, the sample API or the maps', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir, env: childEnv({}) });
    const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path) ?? [];
    assert.ok(files.includes('dist/index.js') && files.includes('dist/entries/tracing-register.js'), files.join(' '));
    assert.deepEqual(
      files.filter((f) => f.endsWith('.tsbuildinfo') || f.startsWith('dist/app/') || f.endsWith('.map')),
      [],
    );
  });
});
