import { Agent, request } from 'node:http';

/** One request's fate, seen from the client. */
export interface Outcome {
  readonly loop: number;
  readonly path: string;
  readonly startedAt: number;
  readonly endedAt: number;
  /** The request went out on a socket that had already carried a response. */
  readonly reusedSocket: boolean;
  readonly status?: number;
  readonly body?: string;
  readonly headers?: Readonly<Record<string, string | string[] | undefined>>;
  /** A socket-level failure: ECONNRESET, EPIPE, ECONNREFUSED, "socket hang up", ... */
  readonly error?: string;
}

export interface LoadOptions {
  readonly port: number;
  /** One keep-alive connection per loop; each path gets its own loops. */
  readonly loops: readonly { readonly path: string; readonly count: number }[];
  /** A loop stops after a response for which this returns true (e.g. 503 SERVER_SHUTTING_DOWN). */
  readonly stopAfter: (o: Outcome) => boolean;
  /** Hard stop (ms from start). */
  readonly maxMs: number;
}

/**
 * A closed-loop keep-alive load: each loop sends its next request as soon as the previous one
 * ended, on its own keep-alive agent (one socket), until `stopAfter` says so, a socket error
 * occurs, or `maxMs` passes. Bounded in time and count, targets 127.0.0.1 only.
 */
export function runKeepAliveLoad(options: LoadOptions): { readonly done: Promise<Outcome[]> } {
  const outcomes: Outcome[] = [];
  const t0 = Date.now();
  const loops: Promise<void>[] = [];
  let loopId = 0;
  for (const spec of options.loops) {
    for (let i = 0; i < spec.count; i++) {
      const loop = loopId++;
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      loops.push(
        (async () => {
          try {
            while (Date.now() - t0 < options.maxMs) {
              const o = await once(options.port, spec.path, agent, loop);
              outcomes.push(o);
              if (o.error !== undefined || options.stopAfter(o)) return;
            }
          } finally {
            agent.destroy();
          }
        })(),
      );
    }
  }
  return { done: Promise.all(loops).then(() => outcomes) };
}

function once(port: number, path: string, agent: Agent, loop: number): Promise<Outcome> {
  const startedAt = Date.now();
  return new Promise((resolve) => {
    let reusedSocket = false;
    const req = request({ host: '127.0.0.1', port, path, agent, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () =>
        resolve({ loop, path, startedAt, endedAt: Date.now(), reusedSocket, status: res.statusCode ?? 0, body, headers: res.headers }),
      );
      res.on('error', (err: NodeJS.ErrnoException) =>
        resolve({ loop, path, startedAt, endedAt: Date.now(), reusedSocket, error: err.code ?? err.message }),
      );
    });
    req.on('socket', () => {
      reusedSocket = req.reusedSocket;
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ loop, path, startedAt, endedAt: Date.now(), reusedSocket, error: err.code ?? err.message }),
    );
    req.end();
  });
}

/** Polls a path every `intervalMs` on fresh connections until stopped; keeps statuses with times. */
export function pollStatus(
  port: number,
  path: string,
  intervalMs: number,
): { stop(): Promise<{ at: number; status?: number; error?: string }[]> } {
  const seen: { at: number; status?: number; error?: string }[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const at = Date.now();
      const r = await new Promise<{ status?: number; error?: string }>((resolve) => {
        const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
        });
        req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
        req.setTimeout(2000, () => req.destroy(new Error('probe timed out')));
        req.end();
      });
      seen.push({ at, ...r });
      await new Promise((res) => setTimeout(res, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return seen;
    },
  };
}
