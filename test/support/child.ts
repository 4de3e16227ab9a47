import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

/** The sample API's entry point, run from source the way `npm start` runs the build. */
export const MAIN = join(ROOT, 'src', 'app', 'main.ts');

/** A child environment with only what the process needs plus `env`: nothing leaks in. */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'TMPDIR', 'LANG']) if (process.env[k] !== undefined) base[k] = process.env[k];
  return { ...base, ...env };
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The tracing preload, as `npm start` uses it (from source). */
export const TRACING_REGISTER = join(ROOT, 'src', 'entries', 'tracing-register.ts');

/** Spawns the sample API with `env` (and the tracing preload, as `npm start` does). */
export function spawnMain(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), '--require', TRACING_REGISTER, MAIN], {
    cwd: ROOT,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Collects a child's output until it exits (killed after `timeoutMs`). */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Resolves with the port once the child logs `listening`; rejects if it exits first. */
export async function waitForListening(child: ChildProcess, timeoutMs: number): Promise<number> {
  return (await waitForListeners(child, timeoutMs)).port;
}

/**
 * Resolves once the child logs `listening`, with its public port and the port `/metrics` is
 * served on (the public one unless metrics have a listener of their own); rejects if it exits first.
 */
export function waitForListeners(child: ChildProcess, timeoutMs: number): Promise<{ port: number; metricsPort: number }> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let errors = '';
    const timer = setTimeout(() => reject(new Error(`not listening after ${timeoutMs} ms: ${errors}`)), timeoutMs);
    child.stderr?.on('data', (d: Buffer) => (errors += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      buffered += d.toString();
      for (const line of buffered.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: number; metricsPort?: number };
          if (entry.msg === 'listening' && typeof entry.port === 'number') {
            clearTimeout(timer);
            resolve({ port: entry.port, metricsPort: entry.metricsPort ?? entry.port });
          }
        } catch {
          // a partial line: wait for the rest
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before listening: ${errors}`));
    });
  });
}
