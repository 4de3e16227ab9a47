// A limited Express app and a steady load of requests against it, recording every response,
// for the failover tests: what each request got, when, and how long it waited.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createRateLimiter, type RateLimiter, type RateLimitMetrics, type RateLimitStore } from '../../src';

/** One request of the load. */
export interface Sample {
  readonly path: string;
  readonly key: string;
  /** ms since the load started (performance.now()) at send and at answer. */
  readonly sentAt: number;
  readonly doneAt: number;
  readonly status: number;
  /** Our error code, when the body had one. */
  readonly error?: string;
}

export interface LimitedApp {
  readonly url: string;
  readonly limiter: RateLimiter;
  close(): Promise<void>;
}

/**
 * Policies: `open` and `closed` (huge buckets, only their fail mode differs) and `drained`
 * (3 per hour, closed). Keyed by the `x-key` header. No deny cache, so every answer is Redis's.
 */
export async function startLimitedApp(store: RateLimitStore, prefix: string, metrics?: RateLimitMetrics): Promise<LimitedApp> {
  const key = (req: express.Request) => req.get('x-key');
  const limiter = createRateLimiter({
    store,
    prefix,
    denyCache: false,
    ...(metrics === undefined ? {} : { observer: metrics }),
    policies: {
      open: { algorithm: 'token_bucket', rps: 1_000_000, burst: 1_000_000, failMode: 'open', key },
      closed: { algorithm: 'token_bucket', rps: 1_000_000, burst: 1_000_000, failMode: 'closed', key },
      drained: { algorithm: 'token_bucket', rps: 1 / 3600, burst: 3, failMode: 'closed', key },
      // A second identity (`x-key2`): `/pair` decides two identities together, as a login does.
      partner: { algorithm: 'token_bucket', rps: 1_000_000, burst: 1_000_000, failMode: 'closed', key: (req) => req.get('x-key2') },
    },
  });
  const app = express();
  for (const name of ['open', 'closed', 'drained']) {
    app.get(`/${name}`, limiter.limit(name), (_req, res) => {
      res.json({ ok: true });
    });
  }
  app.get('/pair', limiter.limit('closed', 'partner'), (_req, res) => {
    res.json({ ok: true });
  });
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    limiter,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await limiter.close();
    },
  };
}

/** GET `path` with `x-key: key` (and `x-key2: key2`), recording the outcome. */
export async function hit(base: string, path: string, key: string, t0: number, key2?: string): Promise<Sample> {
  const sentAt = performance.now() - t0;
  try {
    const headers: Record<string, string> = { 'x-key': key };
    if (key2 !== undefined) headers['x-key2'] = key2;
    const res = await fetch(`${base}${path}`, { headers, signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { error?: string };
    const doneAt = performance.now() - t0;
    return { path, key, sentAt, doneAt, status: res.status, ...(body.error === undefined ? {} : { error: body.error }) };
  } catch (err) {
    return { path, key, sentAt, doneAt: performance.now() - t0, status: 0, error: String(err) };
  }
}

/**
 * `workers` loops, each sending one request at a time (alternating `/open` and `/closed`, over
 * `keys`; with `pairWith`, every third request is `/pair` of a key and `pairWith`), until
 * `stop()`; returns every sample. `t0` is the time origin of the samples.
 */
export function runLoad(
  base: string,
  keys: readonly string[],
  workers: number,
  t0: number,
  pairWith?: string,
): { stop(): Promise<Sample[]> } {
  const samples: Sample[] = [];
  let running = true;
  let n = 0;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const i = n++;
      const key = keys[i % keys.length] as string;
      if (pairWith !== undefined && i % 3 === 2) samples.push(await hit(base, '/pair', key, t0, pairWith));
      else samples.push(await hit(base, i % 2 === 0 ? '/open' : '/closed', key, t0));
      await new Promise((r) => setTimeout(r, 2));
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return samples;
    },
  };
}

/** The first `/closed` request sent at or after `after` ms that Redis answered (200), if any. */
export function firstServedAfter(samples: readonly Sample[], after: number, keys?: ReadonlySet<string>): Sample | undefined {
  return samples
    .filter((s) => s.path === '/closed' && s.status === 200 && s.sentAt >= after && (keys === undefined || keys.has(s.key)))
    .sort((a, b) => a.sentAt - b.sentAt)[0];
}

/** A summary for the log: counts by path (query dropped) and status, and the slowest answer. */
export function summarize(samples: readonly Pick<Sample, 'path' | 'status' | 'error' | 'sentAt' | 'doneAt'>[]): {
  counts: Record<string, number>;
  maxMs: number;
} {
  const counts: Record<string, number> = {};
  let maxMs = 0;
  for (const s of samples) {
    const k = `${s.path.split('?')[0]} ${s.status}${s.error === undefined ? '' : ` ${s.error}`}`;
    counts[k] = (counts[k] ?? 0) + 1;
    maxMs = Math.max(maxMs, s.doneAt - s.sentAt);
  }
  return { counts, maxMs: Math.round(maxMs) };
}

/**
 * Nothing but the documented answers through a failover (`/open` always 200, `/closed` 200 or
 * 503 `RATE_LIMITER_UNAVAILABLE`), and no request stuck behind it (deadline 100 ms; 1 s allows
 * for a busy CI machine).
 */
export function assertDocumentedAnswers(samples: readonly Sample[], maxMs: number): void {
  for (const s of samples) {
    if (s.path === '/open') assert.equal(s.status, 200, JSON.stringify(s));
    else assert.ok(s.status === 200 || (s.status === 503 && s.error === 'RATE_LIMITER_UNAVAILABLE'), JSON.stringify(s));
  }
  assert.ok(maxMs < 1000, `a request waited ${maxMs} ms (decision deadline 100 ms)`);
}
