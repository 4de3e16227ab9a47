// The local cost of one decision around its store call, no Redis and no HTTP: the breaker pool's
// `decide` over a store that answers at once, with the store reading `abandoned()` (as rampart's
// Redis store does) or reading `signal` (as a custom store may: the AbortSignal is then made on
// each decision, as the pool did for every store before), 50 decisions per event-loop turn as
// under load; and the primitives those differ by. Rounds in rotating order; prints µs per call
// and writes bench/results/decision-overhead.json.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCircuitBreaker } from '../src/breaker';
import { LazyAbort } from '../src/internal/lazy-abort';
import CircuitBreaker from 'opossum';
import { breakerOptions, createBreakerPool } from '../src/limit/breakers';
import type { Request, Response } from 'express';
import { DEFAULT_SURFACES } from '../src/app/app';
import { RATE_LIMITER_DEFAULTS } from '../src/limit/options';
import { surfaceRouter } from '../src/limit/surfaces';
import type { Check } from '../src/limit/types';
import type { Decision, DecideOptions, RateLimitStore } from '../src/limit/store';
import { ROOT } from './lib';

const ROUNDS = Number(process.env['ROUNDS'] ?? 3);
const CALLS = Number(process.env['CALLS'] ?? 300_000);
const TURN = 50;

const check: Check = { key: 'k', cost: 1, algorithm: 'token_bucket', intervalUs: 1_000_000, burst: 10 };
const decision: Decision = { allowed: true, retryAfterUs: 0, remaining: [9], resetUs: [0] };
const answered = Promise.resolve(decision);
let sink = 0;

function instantStore(read: (options: DecideOptions) => boolean): RateLimitStore {
  return {
    name: 'instant',
    decide(_checks, options) {
      if (options !== undefined && read(options)) sink++;
      return answered;
    },
    close: () => Promise.resolve(),
  };
}

/** The same pool over a store that asks `abandoned()` (rampart's Redis store) or `signal` (what every store paid before). */
const pools = {
  'pool.decide, store reads abandoned()': (o: DecideOptions) => o.abandoned?.() === true,
  'pool.decide, store reads signal': (o: DecideOptions) => o.signal?.aborted === true,
};
const poolsByCase = Object.entries(pools).map(
  ([name, read]) =>
    [name, createBreakerPool({ store: instantStore(read), deadlineMs: 100, breaker: RATE_LIMITER_DEFAULTS.breaker })] as const,
);

async function perCallUs(call: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i += TURN) {
    const turn: Promise<unknown>[] = [];
    for (let j = 0; j < TURN; j++) turn.push(call());
    await Promise.all(turn);
  }
  return Number(process.hrtime.bigint() - start) / 1000 / CALLS;
}

function syncPerCallUs(call: () => unknown): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) call();
  return Number(process.hrtime.bigint() - start) / 1000 / CALLS;
}

// The surface a request is charged to, found once per request: the sample API's table as the
// router's rules compare paths, against the exact-string lookup it replaced (which a request
// spelled `/V1/STATUS` or `/v1/status/` walked around).
const requests = ['/v1/status', '/v1/notes/0b6f', '/V1/Auth/Login/', '/nowhere'].map(
  (path, i) => ({ method: i === 2 ? 'POST' : 'GET', path, app: { settings: {} } }) as unknown as Request,
);
const noop = () => undefined;
const routed = surfaceRouter(DEFAULT_SURFACES, () => (_req, _res, next) => next());
const exactBefore = new Map(DEFAULT_SURFACES.map((s) => [`${s.method ?? '*'} ${s.path}`, s]));
let r = 0;

// A call through a closed createCircuitBreaker (the sample API's queries go through one), against
// the same call made directly: what the breaker adds to each.
const dependency = () => Promise.resolve(1);
const closedBreaker = createCircuitBreaker({ name: 'bench' });

const cases: Record<string, () => Promise<number>> = {
  'a call, direct': () => perCallUs(dependency),
  'the same call through a closed createCircuitBreaker': () => perCallUs(() => closedBreaker.run(dependency)),
  'surface match, router rules (sample table)': () =>
    Promise.resolve(syncPerCallUs(() => routed(requests[r++ & 3] as Request, undefined as unknown as Response, noop))),
  'surface match before: exact-string lookup': () =>
    Promise.resolve(
      syncPerCallUs(() => {
        const req = requests[r++ & 3] as Request;
        return exactBefore.get(`${req.method} ${req.path}`) ?? exactBefore.get(`* ${req.path}`);
      }),
    ),
  ...Object.fromEntries(poolsByCase.map(([name, pool]) => [name, () => perCallUs(() => pool.decide([check]))])),
  'new AbortController().signal': () => Promise.resolve(syncPerCallUs(() => new AbortController().signal)),
  // The end of a response under requestDeadline, before and now.
  "response's end before: signal read, abort(new Error)": () =>
    Promise.resolve(
      syncPerCallUs(() => {
        const c = new AbortController();
        if (!c.signal.aborted) c.abort(new Error('request finished'));
        return c;
      }),
    ),
  "response's end now: new LazyAbort(), aborted unread": () =>
    Promise.resolve(
      syncPerCallUs(() => {
        const a = new LazyAbort();
        a.abortLazily(() => new Error('request finished'));
        return a;
      }),
    ),
};

/**
 * What opossum's snapshot timer did every bucket interval (1 s by default) before its latency
 * percentiles were turned off: read the window's stats over `calls` successful calls (as at
 * 6,000 decisions/s over the 10 s window). ms per read, with percentiles on and as configured.
 */
async function snapshotMs(calls: number): Promise<{ percentilesOn: number[]; asConfigured: number[] }> {
  const measure = async (options: CircuitBreaker.Options): Promise<number[]> => {
    const breaker = new CircuitBreaker((x: number) => Promise.resolve(x), options);
    for (let i = 0; i < calls; i += TURN) await Promise.all(Array.from({ length: TURN }, (_, j) => breaker.fire(j)));
    const ms: number[] = [];
    for (let r = 0; r < 5; r++) {
      const start = performance.now();
      sink += breaker.stats.fires;
      ms.push(Number((performance.now() - start).toFixed(3)));
    }
    breaker.shutdown();
    return ms;
  };
  const configured = breakerOptions(100, RATE_LIMITER_DEFAULTS.breaker);
  return {
    percentilesOn: await measure({ ...configured, rollingPercentilesEnabled: true, enableSnapshots: true }),
    asConfigured: await measure(configured),
  };
}

async function main(): Promise<void> {
  const names = Object.keys(cases);
  const runs: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round <= ROUNDS; round++) {
    // Round 0 warms up and is not counted; the order rotates each round.
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + round) % names.length] as string;
      const us = await (cases[name] as () => Promise<number>)();
      if (round > 0) (runs[name] as number[]).push(us);
    }
  }
  const rows = names.map((name) => {
    const r = runs[name] as number[];
    const mean = r.reduce((a, b) => a + b, 0) / r.length;
    return {
      case: name,
      usPerCall: Number(mean.toFixed(3)),
      min: Number(Math.min(...r).toFixed(3)),
      max: Number(Math.max(...r).toFixed(3)),
    };
  });
  console.log(`Local cost per decision (${CALLS.toLocaleString('en')} calls, ${TURN} per turn, ${ROUNDS} rounds), Node ${process.version}`);
  console.table(rows);
  for (const [, pool] of poolsByCase) pool.close();
  const snapshot = await snapshotMs(60_000);
  console.log(
    `opossum window stats over 60,000 calls (its snapshot timer, once a second before): percentiles on ${snapshot.percentilesOn.join(', ')} ms; as configured ${snapshot.asConfigured.join(', ')} ms`,
  );
  writeFileSync(
    join(ROOT, 'bench', 'results', 'decision-overhead.json'),
    `${JSON.stringify({ node: process.version, calls: CALLS, perTurn: TURN, rounds: ROUNDS, rows, snapshotMs: snapshot, sink }, null, 2)}\n`,
  );
}

void main();
