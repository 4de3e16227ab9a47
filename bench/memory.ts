// What each algorithm keeps in Redis, how fast the sliding window counter decides, and how far
// its count strays from the exact window's. On a redis-server of its own (started here):
//   1. bytes per identity (MEMORY USAGE) of every algorithm at limits 10, 100 and 1,000, each
//      identity having used all of its limit;
//   2. scale: IDENTITIES identities each filling its bucket, Redis used_memory before and after,
//      per identity and extrapolated to a million (the exact window at 1,000 with a tenth of them:
//      its 100,000 would take ~12 GB);
//   3. decisions/s of the store, 100 callers over 10,000 keys, token bucket, sliding window
//      counter and exact window in ROUNDS rotating rounds of DECISIONS_SECONDS each, the median of
//      each round's ratio to the token bucket;
//   4. the counter against the exact window, both on the memory store (the same arithmetic as
//      the scripts, held in step by the store contract) with a simulated clock: steady loads,
//      many identities, and a burst at a window's edge.
// Writes bench/results/memory.json (npm run bench:memory).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createMemoryStore, createRedisStore, type Check, type RateLimitStore } from '../src';
import { startRedisServer } from '../test/support/redis-server';
import { ROOT } from './lib';

const IDENTITIES = Number(process.env['IDENTITIES'] ?? 100_000);
const DECISIONS_SECONDS = Number(process.env['DECISIONS_SECONDS'] ?? 1);
const ROUNDS = Number(process.env['ROUNDS'] ?? 15);
/** ONLY=decisions (a comma list of bytes, scale, decisions, error) runs those parts; the results file is written only by a full run. */
const ONLY = (process.env['ONLY'] ?? 'bytes,scale,decisions,error').split(',');
const FULL = ['bytes', 'scale', 'decisions', 'error'].every((p) => ONLY.includes(p));
const MINUTE_US = 60_000_000;

type Algorithm = 'token_bucket' | 'sliding_window' | 'sliding_window_counter' | 'quota' | 'concurrency';
const ALGORITHMS: readonly Algorithm[] = ['token_bucket', 'sliding_window', 'sliding_window_counter', 'quota', 'concurrency'];

/** A check of `algorithm` with a limit (burst) of `limit`, costing `cost`, as the limiter makes it. */
function check(algorithm: Algorithm, key: string, limit: number, cost: number, lease = 'Qx7Yp2Lm0a1'): Check {
  switch (algorithm) {
    case 'token_bucket':
      return { key, algorithm, intervalUs: Math.round(MINUTE_US / limit), burst: limit, cost };
    case 'sliding_window':
      return { key, algorithm, windowUs: MINUTE_US, limit, cost };
    case 'sliding_window_counter':
      return { key, algorithm, windowUs: MINUTE_US, limit, cost };
    case 'quota':
      return { key, algorithm, periodUs: 3_600_000_000, limit, cost };
    case 'concurrency':
      return { key, algorithm, leaseUs: MINUTE_US, limit, cost, lease };
  }
}

/** The limiter's key shape for identity `i`: prefix rl, a short policy name, an IPv4 identity. */
const keyOf = (policy: string, i: number) => `rl:${policy}:{i:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}}`;

async function bytesPerIdentity(client: Redis, store: RateLimitStore) {
  const rows: { algorithm: Algorithm; limit: number; bytes: number }[] = [];
  for (const algorithm of ALGORITHMS) {
    for (const limit of [10, 100, 1000]) {
      const c = check(algorithm, keyOf(`b${limit}`, 1), limit, limit);
      if (!(await store.decide([c])).allowed) throw new Error(`${algorithm}: not admitted`);
      rows.push({ algorithm, limit, bytes: Number(await client.call('MEMORY', 'USAGE', c.key, 'SAMPLES', '0')) });
      await client.del(c.key);
    }
  }
  return rows;
}

async function usedMemory(client: Redis): Promise<number> {
  const info = await client.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

/** `n` identities, each filling its bucket of `limit` in one decision; used_memory before and after. */
async function scale(client: Redis, store: RateLimitStore, algorithm: Algorithm, limit: number, n: number) {
  await client.flushall();
  const before = await usedMemory(client);
  const t = performance.now();
  const inFlight = 256;
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) {
        const i = next++;
        if (!(await store.decide([check(algorithm, keyOf('s', i), limit, limit, `Qx7Yp2L${i}`)])).allowed)
          throw new Error(`${algorithm} ${i}`);
      }
    }),
  );
  const after = await usedMemory(client);
  const keys = await client.dbsize();
  const perIdentity = (after - before) / n;
  await client.flushall();
  return {
    algorithm,
    limit,
    identities: n,
    keys,
    usedMemoryBefore: before,
    usedMemoryAfter: after,
    mb: Number(((after - before) / 1e6).toFixed(1)),
    bytesPerIdentity: Math.round(perIdentity),
    perMillionGb: Number(((perIdentity * 1e6) / 1e9).toFixed(3)),
    fillSeconds: Number(((performance.now() - t) / 1000).toFixed(1)),
  };
}

/** Decisions per second of one algorithm: 100 callers, keys rotating over 10,000 identities, a limit never reached. */
async function decisionsPerSecond(store: RateLimitStore, algorithm: Algorithm): Promise<number> {
  const until = performance.now() + DECISIONS_SECONDS * 1000;
  let done = 0;
  let i = 0;
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      while (performance.now() < until) {
        await store.decide([check(algorithm, keyOf(`d${algorithm.length}`, i++ % 10_000), 1_000_000, 1)]);
        done++;
      }
    }),
  );
  return done / DECISIONS_SECONDS;
}

/** A seeded generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The largest number of `times` (sorted, µs) in any window of `windowUs` (a half-open (t - w, t]). */
function maxInWindow(times: readonly number[], windowUs: number): number {
  let best = 0;
  for (let lo = 0, hi = 0; hi < times.length; hi++) {
    while ((times[lo] as number) <= (times[hi] as number) - windowUs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

/**
 * Arrivals `arrivals` (µs, sorted, per identity) decided by a counter and by an exact window on
 * memory stores with a simulated clock. Returns both admitted counts, the largest count in any
 * window of the counter's admissions, and how many of the counter's decisions the exact rule
 * applied to its own admissions would have decided otherwise.
 */
async function compare(arrivals: readonly (readonly number[])[], limit: number) {
  let now = 0;
  const clock = () => now;
  const counter = createMemoryStore({ now: clock });
  const exact = createMemoryStore({ now: clock });
  const events = arrivals.flatMap((ts, id) => ts.map((t) => [t, id] as const)).sort((a, b) => a[0] - b[0]);
  const admitted: number[][] = arrivals.map(() => []);
  let counterAdmitted = 0;
  let exactAdmitted = 0;
  let wronglyAllowed = 0;
  let wronglyLimited = 0;
  const lo = arrivals.map(() => 0);
  for (const [t, id] of events) {
    now = t;
    const key = `{${id}}`;
    const c = await counter.decide([{ key, algorithm: 'sliding_window_counter', windowUs: MINUTE_US, limit, cost: 1 }]);
    const e = await exact.decide([{ key, algorithm: 'sliding_window', windowUs: MINUTE_US, limit, cost: 1 }]);
    if (e.allowed) exactAdmitted++;
    // The exact rule on the counter's own admissions: room when fewer than `limit` in the window.
    const mine = admitted[id] as number[];
    while ((lo[id] as number) < mine.length && (mine[lo[id] as number] as number) <= t - MINUTE_US) lo[id] = (lo[id] as number) + 1;
    const room = mine.length - (lo[id] as number) < limit;
    if (c.allowed) {
      counterAdmitted++;
      mine.push(t);
      if (!room) wronglyAllowed++;
    } else if (room) wronglyLimited++;
  }
  await counter.close();
  await exact.close();
  return {
    requests: events.length,
    exactAdmitted,
    counterAdmitted,
    admittedRatio: Number((counterAdmitted / exactAdmitted).toFixed(5)),
    admittedOverLimitPct: Number(((100 * wronglyAllowed) / events.length).toFixed(4)),
    refusedUnderLimitPct: Number(((100 * wronglyLimited) / events.length).toFixed(4)),
    maxInAnyWindow: Math.max(...admitted.map((a) => maxInWindow(a, MINUTE_US))),
    // Once traffic has run two windows (the first may start mid-window, all at once: the edge case).
    maxInAnyWindowAfterTwo: Math.max(
      ...admitted.map((a, id) =>
        maxInWindow(
          a.filter((t) => t >= (arrivals[id]?.[0] ?? 0) + 2 * MINUTE_US),
          MINUTE_US,
        ),
      ),
    ),
  };
}

/** Poisson arrivals at `perWindow` a window for `windows` windows, from a random phase. */
function poisson(rand: () => number, perWindow: number, windows: number): number[] {
  const out: number[] = [];
  const start = Math.floor(rand() * MINUTE_US) + 1_000 * MINUTE_US;
  for (let t = start; t < start + windows * MINUTE_US;) {
    t += Math.max(1, Math.round((-Math.log(1 - rand()) * MINUTE_US) / perWindow));
    out.push(t);
  }
  return out;
}

/** Evenly spaced arrivals at `perWindow` a window for `windows` windows, from a random phase. */
function constantRate(rand: () => number, perWindow: number, windows: number): number[] {
  const start = Math.floor(rand() * MINUTE_US) + 1_000 * MINUTE_US;
  const gap = MINUTE_US / perWindow;
  return Array.from({ length: Math.floor(perWindow * windows) }, (_, i) => Math.round(start + i * gap));
}

async function errors(seed: number) {
  const rand = random(seed);
  const L = 100;
  // A steady load: a constant rate; then the same rates with Poisson arrivals (random clustering).
  const steady = [];
  for (const load of [0.9, 1.1, 2, 5]) steady.push({ load, ...(await compare([constantRate(rand, load * L, 200)], L)) });
  const poissonLoads = [];
  for (const load of [0.9, 1.1, 2, 5]) poissonLoads.push({ load, ...(await compare([poisson(rand, load * L, 200)], L)) });
  // Many identities, each at its own rate from half to three times the limit.
  const many = await compare(
    Array.from({ length: 1000 }, () => poisson(rand, (0.5 + 2.5 * rand()) * L, 20)),
    L,
  );
  // The edge: L requests in the last 1 % of a window, then one every 0.1 % of a window for two windows.
  const k = 1_000 * MINUTE_US;
  const edge: number[] = [];
  for (let i = 0; i < L; i++) edge.push(k - MINUTE_US / 100 + i);
  for (let i = 1; i <= 2000; i++) edge.push(k + (i * MINUTE_US) / 1000);
  const burst = await compare([edge], L);
  return { seed, limit: L, windowSeconds: 60, steady, poisson: poissonLoads, manyIdentities: many, edgeBurst: burst };
}

async function main() {
  const redis = await startRedisServer();
  const client = new Redis(redis.url);
  const store = createRedisStore({ client, maxBatch: 128 });
  try {
    const version = (await client.info('server')).match(/redis_version:(\S+)/)?.[1];
    process.stderr.write('bytes per identity...\n');
    const bytes = ONLY.includes('bytes') ? await bytesPerIdentity(client, store) : [];
    process.stderr.write('scale...\n');
    const scaleRows = [];
    for (const [algorithm, limit, n] of [
      ['token_bucket', 1000, IDENTITIES],
      ['sliding_window_counter', 1000, IDENTITIES],
      ['quota', 1000, IDENTITIES],
      ['sliding_window', 10, IDENTITIES],
      ['sliding_window', 100, IDENTITIES],
      ['sliding_window', 1000, Math.round(IDENTITIES / 10)],
    ] as const) {
      if (!ONLY.includes('scale')) break;
      const row = await scale(client, store, algorithm, limit, n);
      scaleRows.push(row);
      process.stderr.write(`  ${JSON.stringify(row)}\n`);
    }
    process.stderr.write('decisions/s...\n');
    const runs: { algorithm: Algorithm; round: number; perSecond: number }[] = [];
    const compared: Algorithm[] = ['token_bucket', 'sliding_window_counter', 'sliding_window'];
    for (let round = 0; round < (ONLY.includes('decisions') ? ROUNDS : 0); round++) {
      for (let j = 0; j < compared.length; j++) {
        const algorithm = compared[(j + round) % compared.length] as Algorithm;
        await client.flushall();
        const perSecond = await decisionsPerSecond(store, algorithm);
        runs.push({ algorithm, round, perSecond: Math.round(perSecond) });
        process.stderr.write(`  ${algorithm} (round ${round + 1}): ${Math.round(perSecond)}/s\n`);
      }
    }
    const bucketOf = (round: number) => runs.find((r) => r.algorithm === 'token_bucket' && r.round === round)?.perSecond ?? 1;
    const decisions = compared.map((algorithm) => {
      const rs = runs.filter((r) => r.algorithm === algorithm);
      const ratios = rs.map((r) => r.perSecond / bucketOf(r.round));
      return {
        algorithm,
        perSecond: rs.map((r) => r.perSecond),
        // The median of the rounds' ratios: one busy second of the machine moves one round, not the figure.
        ratioToTokenBucket: Number((ratios.sort((a, b) => a - b)[Math.floor(ratios.length / 2)] ?? 0).toFixed(3)),
        ratioMin: Number(Math.min(...ratios).toFixed(3)),
        ratioMax: Number(Math.max(...ratios).toFixed(3)),
      };
    });
    process.stderr.write('the counter against the exact window...\n');
    const error = ONLY.includes('error') ? await errors(Number(process.env['SEED'] ?? 20261207)) : undefined;
    const result = {
      date: new Date().toISOString(),
      node: process.version,
      redis: version,
      bytesPerIdentity: bytes,
      scale: scaleRows,
      decisions,
      error,
    };
    if (FULL) writeFileSync(join(ROOT, 'bench', 'results', 'memory.json'), `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify({ bytes, decisions, error }, null, 2));
  } finally {
    await store.close();
    client.disconnect();
    await redis.stop();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
