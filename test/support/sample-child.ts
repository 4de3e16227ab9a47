// The sample API as a real child process, watched: its port, its warnings and errors (bounded),
// and its exit; plus a load of mixed traffic against it that records every answer.
import type { ChildProcess } from 'node:child_process';
import { spawnMain } from './child';

/** A running sample API child. */
export interface SampleChild {
  readonly child: ChildProcess;
  readonly port: number;
  readonly base: string;
  /** Where `/metrics` is served: the metrics listener (METRICS_PORT=0 unless `env` says otherwise), or `base`. */
  readonly metricsBase: string;
  /** Log lines at warn level or above (at most the last 200), and how many there were. */
  readonly warnings: string[];
  readonly counts: { warn: number; error: number; fatal: number };
  /** Resolves with the exit code and signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly alive: boolean;
  /** Stderr (bounded to 64 KB). */
  stderr(): string;
  /** SIGKILL if still running. */
  kill(): Promise<void>;
}

/**
 * Spawns the sample API and resolves once it listens. Its stdout is read line by line and dropped.
 * Both its ports are any free ones unless `env` says otherwise: children side by side never collide.
 */
export function startSampleChild(env: Record<string, string>, timeoutMs = 30_000): Promise<SampleChild> {
  const child = spawnMain({ PORT: '0', METRICS_PORT: '0', ...env });
  const warnings: string[] = [];
  const counts = { warn: 0, error: 0, fatal: 0 };
  let stderr = '';
  let partial = '';
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-65_536);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sample API not listening after ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`sample API exited with ${code} before listening: ${stderr}`));
    });
    child.stdout?.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        // Parse only what is looked at: request logs (info) go by untouched.
        if (!line.startsWith('{') || !(line.includes('"msg":"listening"') || /"level":[4-6]0/.test(line))) continue;
        let entry: { level?: number; msg?: string; port?: number; metricsPort?: number };
        try {
          entry = JSON.parse(line) as typeof entry;
        } catch {
          continue;
        }
        const level = entry.level ?? 0;
        if (level >= 40) {
          if (level >= 60) counts.fatal++;
          else if (level >= 50) counts.error++;
          else counts.warn++;
          warnings.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
          if (warnings.length > 200) warnings.shift();
        }
        if (entry.msg === 'listening' && typeof entry.port === 'number') {
          clearTimeout(timer);
          const port = entry.port;
          resolve({
            child,
            port,
            base: `http://127.0.0.1:${port}`,
            metricsBase: `http://127.0.0.1:${entry.metricsPort ?? port}`,
            warnings,
            counts,
            exited,
            get alive() {
              return exitInfo === undefined;
            },
            stderr: () => stderr,
            async kill() {
              if (exitInfo !== undefined) return;
              child.kill('SIGKILL');
              await exited;
            },
          });
        }
      }
    });
  });
}

/** One answer of the mixed load. */
export interface Answer {
  readonly path: string;
  /** ms since the load's origin, at send and at answer. */
  readonly sentAt: number;
  readonly doneAt: number;
  /** 0 when the request failed at the transport (reset, refused, timeout). */
  readonly status: number;
  readonly error?: string;
  readonly retryAfter?: string | null;
}

/** Sends `paths` round robin from `workers` loops until `stop()`; records every answer. */
export function mixedLoad(
  base: string,
  paths: readonly string[],
  workers: number,
  t0: number,
): { readonly answers: Answer[]; stop(): Promise<Answer[]> } {
  const answers: Answer[] = [];
  let running = true;
  let n = 0;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const path = paths[n++ % paths.length] as string;
      const sentAt = performance.now() - t0;
      try {
        const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(20_000) });
        const text = await res.text();
        let error: string | undefined;
        try {
          error = (JSON.parse(text) as { error?: string }).error;
        } catch {
          error = `non-JSON body: ${text.slice(0, 80)}`;
        }
        answers.push({
          path,
          sentAt,
          doneAt: performance.now() - t0,
          status: res.status,
          retryAfter: res.headers.get('retry-after'),
          ...(error === undefined ? {} : { error }),
        });
      } catch (err) {
        answers.push({ path, sentAt, doneAt: performance.now() - t0, status: 0, error: String(err) });
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  });
  return {
    answers,
    async stop() {
      running = false;
      await Promise.all(loops);
      return answers;
    },
  };
}

/**
 * A policies file for fault tests: `public` fails open on `/v1/status`, `strict` fails closed on
 * `/v1/slow`; both far from their limits, so every 503 is the fault's.
 */
export const FAIL_MODE_POLICIES = Object.freeze({
  policies: {
    public: { algorithm: 'token_bucket', rps: 1_000_000, burst: 1_000_000, key: 'ip', failMode: 'open' },
    strict: { algorithm: 'token_bucket', rps: 1_000_000, burst: 1_000_000, key: 'ip', failMode: 'closed' },
  },
  surfaces: [
    { surfaceId: 'status', method: 'GET', path: '/v1/status', policies: ['public'] },
    { surfaceId: 'slow', method: 'GET', path: '/v1/slow', policies: ['strict'] },
    { surfaceId: 'login', method: 'POST', path: '/v1/auth/login', policies: ['login_ip', 'login_credential'] },
    { surfaceId: 'default', path: '/*', policies: ['public'] },
  ],
});

/** Reads one gauge from the child's `/metrics` (at its `metricsBase`). */
export async function metricValue(metricsBase: string, name: string): Promise<number> {
  const text = await (await fetch(`${metricsBase}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  if (m === null) throw new Error(`${name} not in /metrics`);
  return Number(m[1]);
}
