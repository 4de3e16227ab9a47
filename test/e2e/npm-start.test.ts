// `npm start` as an operator runs it: a SIGTERM sent to npm reaches the server, which drains a
// request in flight and exits 0 (npm with it), leaving no orphan; and the start script reads a
// `.env` in its working directory.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitUntil } from '../../scripts/wait';
import { childEnv } from '../support/child';
import { freePort } from '../support/redis-server';

const ROOT = join(__dirname, '..', '..');
const START = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts[
  'start'
] as string;

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

describe('npm start (a real npm, a real SIGTERM)', function () {
  this.timeout(120_000);

  it('SIGTERM to npm reaches the server: the request in flight completes, the server exits 0, npm exits 0, no orphan', async () => {
    const port = await freePort();
    const npm = spawn('npm', ['start'], {
      cwd: ROOT,
      env: childEnv({ PORT: String(port), LOG_LEVEL: 'info' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    npm.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    npm.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      npm.once('exit', (code, signal) => resolve({ code, signal })),
    );
    let server = 0;
    try {
      await waitUntil('npm start to serve', async () => (await fetch(`http://127.0.0.1:${port}/health/live`)).status === 200, 90_000, 100);
      // npm's child is the server itself (exec), not a shell waiting on it.
      const kids = childrenOf(npm.pid as number);
      assert.equal(kids.length, 1, `npm has one child: ${kids.join(',')}`);
      server = kids[0] as number;
      assert.match(readFileSync(`/proc/${server}/cmdline`, 'utf8').replace(/\0/g, ' '), /^node .*dist\/app\/main\.js/);

      const slow = fetch(`http://127.0.0.1:${port}/v1/slow?ms=800`).then(async (r) => ({ status: r.status, body: await r.text() }));
      await new Promise((r) => setTimeout(r, 200));
      npm.kill('SIGTERM');
      const answered = await slow;
      assert.equal(answered.status, 200, answered.body);
      const end = await exited;
      assert.deepEqual(end, { code: 0, signal: null }, out.slice(-2000));
      await waitUntil('the server process to be gone', async () => !alive(server), 5_000, 20);
      assert.match(out, /"msg":"shutdown complete"/);
      assert.match(out, /"exitCode":0/);
      const complete = out.split('\n').find((l) => l.includes('"msg":"shutdown complete"'));
      console.log(`      ${complete?.slice(0, 300)}`);
    } finally {
      if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL');
      if (server !== 0 && alive(server)) process.kill(server, 'SIGKILL');
    }
  });

  it('the start script reads .env from its working directory (and the environment wins over it)', async () => {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
    const dir = mkdtempSync(join(tmpdir(), 'rampart-envfile-'));
    const port = await freePort();
    try {
      symlinkSync(join(ROOT, 'dist'), join(dir, 'dist'));
      writeFileSync(join(dir, '.env'), `# as copied from .env.example, then edited\nPORT=${port}\nLOG_LEVEL=warn\nMODE=dev\n`);
      // The start script exactly as package.json has it, run by a shell as npm does.
      const child = spawn('sh', ['-c', START], { cwd: dir, env: childEnv({ LOG_LEVEL: 'info' }), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      try {
        await waitUntil(
          'the server on the port from .env',
          async () => (await fetch(`http://127.0.0.1:${port}/health/live`)).status === 200,
          30_000,
          100,
        );
        assert.match(out, /"msg":"listening"/, 'LOG_LEVEL=info from the environment won over warn from .env');
      } finally {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await gone;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
