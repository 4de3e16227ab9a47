import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const CHILD = join(__dirname, 'accuracy-child.ts');

/** A running accuracy child (see accuracy-child.ts) and its stdout, line by line. */
export interface AccuracyChild {
  readonly port: number;
  readonly pid: number;
  /** Sends `run <path> <requests> <concurrency> <holdMs>` and resolves with the child's counts. */
  run(path: string, requests: number, concurrency: number, holdMs: number): Promise<RunCounts>;
  /** What the identity has left under `policy`. */
  peek(policy: string): Promise<number>;
  kill(signal: NodeJS.Signals): void;
  exited: Promise<void>;
}

export interface RunCounts {
  readonly admitted: number;
  readonly limited: number;
  readonly other: number;
  readonly maxInFlight: number;
  /** Logins answered 401 (a wrong password). */
  readonly failed: number;
  /** The tokens the admitted `/t` requests really used. */
  readonly used: number;
}

export async function startAccuracyChild(url: string, prefix: string, identity: string, leaseSeconds: number): Promise<AccuracyChild> {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    ['--require', require.resolve('tsx/cjs'), CHILD, url, prefix, identity, String(leaseSeconds)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const nextLine = async (): Promise<string> => {
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`accuracy child: no answer; ${stderr}`)), 60_000).unref(),
    );
    const r = await Promise.race([lines.next(), timeout, exited.then(() => Promise.reject(new Error(`accuracy child exited: ${stderr}`)))]);
    return String(r.value);
  };
  const { port } = JSON.parse(await nextLine()) as { port: number };
  return {
    port,
    pid: child.pid as number,
    async run(path, requests, concurrency, holdMs) {
      child.stdin.write(`run ${path} ${requests} ${concurrency} ${holdMs}\n`);
      return JSON.parse(await nextLine()) as RunCounts;
    },
    async peek(policy) {
      child.stdin.write(`peek ${policy}\n`);
      return (JSON.parse(await nextLine()) as { remaining: number }).remaining;
    },
    kill(signal) {
      child.kill(signal);
    },
    exited,
  };
}

export interface AccuracyResult {
  /** Per process: the quota phase (1,000 requests each, 50 at a time). */
  readonly quota: RunCounts[];
  /** Per process: the concurrency phase. */
  readonly concurrency: RunCounts[];
  /** Per process: 250 logins (75 with a wrong password), `login_credential` settling failures only. */
  readonly logins: RunCounts[];
  /** Per process: 250 requests reserving 1,000 tokens each, settled to what each used. */
  readonly tokens: RunCounts[];
  /** What `login_credential` (of 1,000) and `tokens` (of 1,000,000) had left at the end. */
  readonly left: { readonly loginCredential: number; readonly tokens: number };
}

/**
 * The accuracy run: 4 processes on one Redis (`url`); each sends 1,000 requests (50 at a time)
 * to a quota of 1,000 per day shared by all, then requests to a concurrency limit of 10 that
 * hold 20 ms each, 50 in flight across the processes (13 + 13 + 12 + 12).
 */
export async function accuracyRun(url: string): Promise<AccuracyResult> {
  const prefix = `acc${randomBytes(3).toString('hex')}`;
  const identity = `id${randomBytes(3).toString('hex')}`;
  const children = await Promise.all(Array.from({ length: 4 }, () => startAccuracyChild(url, prefix, identity, 30)));
  try {
    const quota = await Promise.all(children.map((c) => c.run('/q', 1_000, 50, 0)));
    const concurrency = await Promise.all(children.map((c, i) => c.run('/c', 150, i < 2 ? 13 : 12, 20)));
    const logins = await Promise.all(children.map((c) => c.run('/login', 250, 12, 0)));
    const tokens = await Promise.all(children.map((c) => c.run('/t', 250, 12, 0)));
    // Settles happen as responses end: a response can reach the client a moment before its settle
    // reaches Redis. Read again until the figures hold still (at most 5 s).
    const first = children[0] as AccuracyChild;
    let left = { loginCredential: await first.peek('login_credential'), tokens: await first.peek('tokens') };
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const again = { loginCredential: await first.peek('login_credential'), tokens: await first.peek('tokens') };
      if (again.loginCredential === left.loginCredential && again.tokens === left.tokens) break;
      left = again;
    }
    return { quota, concurrency, logins, tokens, left };
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => c.exited));
  }
}

/** Prints the run's figures (as `label`) and checks them: exactly 1,000 admitted by the quota, never more than 10 in flight. */
export function assertAccurate(label: string, r: AccuracyResult): void {
  const admitted = r.quota.reduce((sum, c) => sum + c.admitted, 0);
  const other = [...r.quota, ...r.concurrency].reduce((sum, c) => sum + c.other, 0);
  const maxInFlight = Math.max(...r.concurrency.map((c) => c.maxInFlight));
  const concurrencyAdmitted = r.concurrency.reduce((sum, c) => sum + c.admitted, 0);
  console.log(
    `      ${label}: quota admitted ${admitted} (per process ${r.quota.map((c) => c.admitted).join(', ')}); concurrency: ${concurrencyAdmitted} admitted of 600, at most ${maxInFlight} in flight`,
  );
  assert.equal(other, 0, 'every answer a decision (200 or 429)');
  assert.equal(admitted, 1_000);
  assert.ok(maxInFlight <= 10, `in flight at once: ${maxInFlight}`);
  assert.ok(maxInFlight >= 8, `the limit was reached (${maxInFlight})`);
  const failed = r.logins.reduce((sum, c) => sum + c.failed, 0);
  const used = r.tokens.reduce((sum, c) => sum + c.used, 0);
  console.log(
    `      ${label}: 1,000 logins, ${failed} wrong: login_credential charged ${1_000 - r.left.loginCredential}; 1,000 reservations of 1,000 tokens settled to ${used} used: charged ${1_000_000 - r.left.tokens}`,
  );
  assert.equal(
    [...r.logins, ...r.tokens].reduce((sum, c) => sum + c.admitted, 0),
    2_000,
    'every login and token request admitted',
  );
  assert.equal(failed, 300);
  assert.equal(1_000 - r.left.loginCredential, 300, 'login_credential charged the failed logins only');
  assert.equal(1_000_000 - r.left.tokens, used, 'tokens charged exactly what was used');
}
