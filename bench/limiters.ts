// `npm run bench`: rampart against bare Express, express-rate-limit + rate-limit-redis and
// rate-limiter-flexible, in one run, on a Redis this script starts. Every number is also given
// as a ratio to bare Express (or to rate-limiter-flexible) from the same run.
//   paced: the same at half of bare Express's throughput, open-loop (bench/paced.ts: latency in µs
//     from each request's due time, HDR histogram)
//   HTTP, all allowed: 50 connections, 10,000 client keys in a header, from a separate process:
//     autocannon, then (when Debian's `wrk` is installed) wrk, one thread, bench/wrk-keys.lua
//   flood: one key, 100 per minute, almost every request denied
//   decisions/s: each store's decision function, 100 concurrent callers, 10,000 keys, no HTTP;
//     rampart's on each client it accepts (ioredis 6 from createRedisClient, ioredis 5, iovalkey,
//     node-redis 6 and 5)
//   memory: Redis MEMORY USAGE of one active key per limiter, 8-character identity
//   accuracy: 4 processes hammering one bucket; admitted vs configured
//   CPU per request (HTTP rows): the server process's own CPU (/proc/<pid>/stat) and Redis's
//     (INFO cpu) over the measured window, divided by the requests completed; with its ratio to
//     bare Express's in the same round (rounds rotate), which a busy machine moves far less than
//     requests per second
// env: DURATION (s per HTTP run, default 10), ROUNDS (default 2), DECISIONS_DURATION (default 5),
//      DECISIONS_ROUNDS (default 3),
//      ONLY (comma list of allow,flood,decisions,memory,accuracy; results are written only for all)
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createRedisStore } from '../src';
import { startRedisServer, type RedisProcess } from '../test/support/redis-server';
import { ROOT, startServer } from './lib';
import { APP_LABELS, APPS, CLIENT_KEYS, CLIENT_ROWS, PREFIXES, type AppName, type Scenario } from './limits';
import type { StoreName } from './decisions';

const DURATION = Number(process.env['DURATION'] ?? 10);
const ROUNDS = Number(process.env['ROUNDS'] ?? 2);
const DECISIONS_DURATION = Number(process.env['DECISIONS_DURATION'] ?? 5);
const DECISIONS_ROUNDS = Number(process.env['DECISIONS_ROUNDS'] ?? 3);
const CONNECTIONS = 50;
const TSX = ['--require', 'tsx/cjs'];

interface Load {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly total: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly statuses: Record<string, number>;
  /** CPU (µs) per completed request over the measured window: the server's own, Redis's. */
  serverCpuUs?: number;
  redisCpuUs?: number;
}

/** Clock ticks per second of /proc/<pid>/stat's times (`getconf CLK_TCK`; 100 on Linux). */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

/** A process's CPU time so far (user + system), µs, from /proc/<pid>/stat. */
function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces, inside parentheses): utime is the 14th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK;
}

/** Redis's CPU time so far (user + system, every thread), µs, from INFO cpu. */
async function redisCpuUs(client: Redis): Promise<number> {
  const info = await client.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6;
}

function run(args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...TSX, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')} exited ${code}`))));
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** Load generators: autocannon (Node, its own process) always; wrk (C, Debian's `wrk`) when installed. */
type Generator = 'autocannon' | 'wrk';
const HAS_WRK = spawnSync('wrk', ['--version']).error === undefined;

/** wrk, one thread, CONNECTIONS keep-alive connections, the client key rotating (bench/wrk-keys.lua). */
function loadWrk(port: number, durationSec: number, keys: number): Promise<Load> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'wrk',
      ['-t1', `-c${CONNECTIONS}`, `-d${durationSec}s`, '-s', join(ROOT, 'bench', 'wrk-keys.lua'), `http://127.0.0.1:${port}/json`],
      { env: { ...process.env, WRK_KEYS: String(keys) }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{"requests"'));
      if (code !== 0 || line === undefined) {
        reject(new Error(`wrk exited ${code}: ${out.slice(-500)}`));
        return;
      }
      const r = JSON.parse(line) as {
        requests: number;
        durationUs: number;
        p50Us: number;
        p99Us: number;
        connectErrors: number;
        readErrors: number;
        writeErrors: number;
        statusErrors: number;
        timeouts: number;
      };
      resolve({
        requestsPerSecond: r.requests / (r.durationUs / 1e6),
        p50Ms: r.p50Us / 1000,
        p99Ms: r.p99Us / 1000,
        total: r.requests,
        errors: r.connectErrors + r.readErrors + r.writeErrors,
        timeouts: r.timeouts,
        // wrk counts answers outside 2xx/3xx, not each status
        statuses: { '2xx/3xx': r.requests - r.statusErrors, other: r.statusErrors },
      });
    });
  });
}

/** Closed-loop load from autocannon; with a `rate`, open-loop from bench/paced.ts (µs resolution, from each request's due time). */
async function load(port: number, durationSec: number, keys: number, rate = 0): Promise<Load> {
  const url = `http://127.0.0.1:${port}/json`;
  const out =
    rate > 0
      ? await run([join(ROOT, 'bench', 'paced.ts'), url, String(rate), String(durationSec), String(keys), String(CONNECTIONS)])
      : await run([join(ROOT, 'bench', 'load.ts'), url, String(CONNECTIONS), String(durationSec), String(keys)]);
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Load;
}

/** Store tuning knobs handed to the servers, for experiments (MAX_BATCH, AUTO_PIPELINING). */
function passThrough(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['MAX_BATCH', 'AUTO_PIPELINING']) {
    const v = process.env[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

async function http(
  redis: RedisProcess,
  scenario: Scenario,
  rate = 0,
  generator: Generator = 'autocannon',
): Promise<Record<AppName, Load[]>> {
  const results = Object.fromEntries(APPS.map((a) => [a, [] as Load[]])) as Record<AppName, Load[]>;
  const cpuClient = new Redis(redis.url);
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order so that no app always runs first (or last) in a round.
    const order = APPS.map((_, i) => APPS[(i + round) % APPS.length] as AppName);
    for (const app of order) {
      const server = await startServer(
        TSX.concat(join(ROOT, 'bench', 'servers', 'limiter-app.ts')),
        { APP: app, SCENARIO: scenario, REDIS_URL: redis.url, ...passThrough() },
        '/ready',
      );
      const keys = scenario === 'allow' ? CLIENT_KEYS : 1;
      await load(server.port, 2, keys); // warm-up (and, in a flood, exhausts the one key)
      const pid = server.child.pid as number;
      const [serverBefore, redisBefore] = [processCpuUs(pid), await redisCpuUs(cpuClient)];
      const r = generator === 'wrk' ? await loadWrk(server.port, DURATION, keys) : await load(server.port, DURATION, keys, rate);
      const [serverAfter, redisAfter] = [processCpuUs(pid), await redisCpuUs(cpuClient)];
      // The INFO call itself is a request too, far below the measurement's resolution.
      r.serverCpuUs = (serverAfter - serverBefore) / Math.max(1, r.total);
      r.redisCpuUs = (redisAfter - redisBefore) / Math.max(1, r.total);
      results[app].push(r);
      process.stderr.write(
        `${scenario}${rate > 0 ? ` at ${rate}/s` : ''}${generator === 'wrk' ? ' (wrk)' : ''} ${app} round ${round + 1}: ${Math.round(r.requestsPerSecond)} req/s p50 ${r.p50Ms} p99 ${r.p99Ms} CPU/request ${r.serverCpuUs?.toFixed(1)} + Redis ${r.redisCpuUs?.toFixed(1)} µs ${JSON.stringify(r.statuses)}\n`,
      );
      await server.stop();
    }
  }
  await cpuClient.quit();
  return results;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ratio = (x: number, base: number) => Number((x / base).toFixed(3));

function summarize(results: Record<AppName, Load[]>) {
  const bare = mean(results.bare.map((r) => r.requestsPerSecond));
  const bareP99 = mean(results.bare.map((r) => r.p99Ms));
  const cpu = (r: Load) => (r.serverCpuUs ?? NaN) + (r.redisCpuUs ?? NaN);
  return APPS.map((app) => {
    const rs = results[app];
    // Each round's CPU per request against bare Express's in the same round.
    const cpuRatios = rs.map((r, round) => cpu(r) / cpu(results.bare[round] as Load));
    const rps = mean(rs.map((r) => r.requestsPerSecond));
    const statuses: Record<string, number> = {};
    for (const r of rs) for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
    return {
      app: APP_LABELS[app],
      rps: Math.round(rps),
      ratio: ratio(rps, bare),
      p50Ms: Number(mean(rs.map((r) => r.p50Ms)).toFixed(2)),
      p99Ms: Number(mean(rs.map((r) => r.p99Ms)).toFixed(2)),
      p99AddedMs: Number((mean(rs.map((r) => r.p99Ms)) - bareP99).toFixed(2)),
      // the rounds' lowest and highest p99: the spread behind the mean
      p99RangeMs: `${Math.min(...rs.map((r) => r.p99Ms))}-${Math.max(...rs.map((r) => r.p99Ms))}`,
      errors: rs.reduce((a, r) => a + r.errors + r.timeouts, 0),
      cpuUsPerRequest: Number(mean(rs.map(cpu)).toFixed(1)),
      redisCpuUsPerRequest: Number(mean(rs.map((r) => r.redisCpuUs ?? NaN)).toFixed(1)),
      cpuRatio: Number(mean(cpuRatios).toFixed(3)),
      // the rounds' lowest and highest CPU ratio: the spread behind the mean
      cpuRatioRange: `${Math.min(...cpuRatios).toFixed(2)}-${Math.max(...cpuRatios).toFixed(2)}`,
      statuses,
    };
  });
}

const STORES: readonly StoreName[] = [
  'rampart',
  ...CLIENT_ROWS,
  'rampart-burst-quota-concurrency',
  'seven-operations-floor',
  'rlf',
  'rlf-autopipelining',
  'erl',
];

async function decisions(redis: RedisProcess) {
  // DECISIONS_ROUNDS rounds in rotating order; each round's ratio is against that round's rlf.
  const runs: { store: StoreName; round: number; decisionsPerSecond: number }[] = [];
  for (let round = 0; round < DECISIONS_ROUNDS; round++) {
    const order = STORES.map((_, i) => STORES[(i + round) % STORES.length] as StoreName);
    for (const store of order) {
      const out = await run([join(ROOT, 'bench', 'decisions.ts'), 'decisions', store, redis.url, String(DECISIONS_DURATION), '100']);
      const r = JSON.parse(out.trim()) as { decisionsPerSecond: number };
      runs.push({ store, round, decisionsPerSecond: r.decisionsPerSecond });
      process.stderr.write(`decisions ${store} (round ${round + 1}): ${r.decisionsPerSecond}/s\n`);
    }
  }
  const rlfOf = (round: number) => runs.find((r) => r.store === 'rlf' && r.round === round)?.decisionsPerSecond ?? 1;
  return STORES.map((store) => {
    const rs = runs.filter((r) => r.store === store);
    const ratios = rs.map((r) => r.decisionsPerSecond / rlfOf(r.round));
    const dps = rs.map((r) => r.decisionsPerSecond);
    return {
      store,
      decisionsPerSecond: Math.round(dps.reduce((a, b) => a + b, 0) / dps.length),
      min: Math.min(...dps),
      max: Math.max(...dps),
      ratioToRlf: Number((ratios.reduce((a, b) => a + b, 0) / ratios.length).toFixed(3)),
      ratioMin: Number(Math.min(...ratios).toFixed(3)),
      ratioMax: Number(Math.max(...ratios).toFixed(3)),
    };
  });
}

/** MEMORY USAGE of the key(s) each limiter keeps for one 8-character identity. */
async function memory(redis: RedisProcess) {
  const identity = 'abcdefgh';
  const rows: { limiter: string; key: string; bytes: number }[] = [];
  const client = new Redis(redis.url);
  for (const store of ['erl', 'rlf', 'rampart'] as const) {
    await run([join(ROOT, 'bench', 'decisions.ts'), 'hammer', store, redis.url, identity, '1', '1', '100'], 'go\n');
    const pattern =
      store === 'erl'
        ? `${PREFIXES.erl}${identity}`
        : store === 'rlf'
          ? `${PREFIXES.rlf}:${identity}`
          : `${PREFIXES.rampart}:p:{${identity}}`;
    const keys = await client.keys(pattern);
    if (keys.length !== 1) throw new Error(`${store}: expected one key ${pattern}, found ${keys.join(', ')}`);
    const key = keys[0] as string;
    rows.push({ limiter: store, key, bytes: Number(await client.call('MEMORY', 'USAGE', key)) });
  }
  // The sample API's own naming: prefix rl, policy public, an IPv4 identity of 8 characters.
  const sample = 'rl:public:{i:10.0.0.1}';
  await client.set(sample, '1764150000000000', 'PX', 60_000);
  rows.push({ limiter: 'rampart (sample API naming)', key: sample, bytes: Number(await client.call('MEMORY', 'USAGE', sample)) });
  // A quota and a concurrency policy (10 leases held), as the store writes them.
  const store = createRedisStore({ client });
  const quotaKey = `${PREFIXES.rampart}:q:{${identity}}`;
  await store.decide([{ key: quotaKey, algorithm: 'quota', periodUs: 86_400_000_000, limit: 10_000, cost: 1 }]);
  rows.push({ limiter: 'rampart quota', key: quotaKey, bytes: Number(await client.call('MEMORY', 'USAGE', quotaKey)) });
  const leaseKey = `${PREFIXES.rampart}:c:{${identity}}`;
  for (let i = 0; i < 10; i++)
    await store.decide([{ key: leaseKey, algorithm: 'concurrency', leaseUs: 30_000_000, limit: 10, cost: 1, lease: `bench${i}` }]);
  rows.push({ limiter: 'rampart concurrency (10 leases)', key: leaseKey, bytes: Number(await client.call('MEMORY', 'USAGE', leaseKey)) });
  await store.close();
  await client.quit();
  return rows;
}

/** 4 processes, 1,000 decisions each (50 in flight per process), on a bucket of 1,000. */
async function accuracy(redis: RedisProcess) {
  const amount = 1000;
  const rows: { limiter: StoreName; configured: number; attempted: number; admitted: number; failed: number }[] = [];
  for (const store of ['rampart', 'rlf', 'erl'] as const) {
    const key = `acc${store.length}${Date.now() % 100000}`;
    const procs = Array.from({ length: 4 }, () => {
      const child = spawn(
        process.execPath,
        [...TSX, join(ROOT, 'bench', 'decisions.ts'), 'hammer', store, redis.url, key, '1000', '50', String(amount)],
        {
          cwd: ROOT,
          stdio: ['pipe', 'pipe', 'inherit'],
        },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const ready = new Promise<void>((resolve) => {
        const check = () => (out.includes('ready') ? resolve() : setTimeout(check, 20));
        check();
      });
      const done = new Promise<{ admitted: number; failed: number }>((resolve, reject) =>
        child.once('exit', (code) =>
          code === 0
            ? resolve(JSON.parse(out.trim().split('\n').pop() ?? '{}') as { admitted: number; failed: number })
            : reject(new Error(`hammer exited ${code}`)),
        ),
      );
      return { child, ready, done };
    });
    await Promise.all(procs.map((p) => p.ready));
    for (const p of procs) p.child.stdin.end('go\n');
    const results = await Promise.all(procs.map((p) => p.done));
    rows.push({
      limiter: store,
      configured: amount,
      attempted: 4000,
      admitted: results.reduce((a, r) => a + r.admitted, 0),
      failed: results.reduce((a, r) => a + r.failed, 0),
    });
  }
  return rows;
}

async function main(): Promise<void> {
  const redis = await startRedisServer();
  try {
    const only = (process.env['ONLY'] ?? 'allow,flood,decisions,memory,accuracy').split(',');
    const allow = only.includes('allow') ? summarize(await http(redis, 'allow')) : [];
    // Latency without queueing: the same load at a fixed rate, half of bare Express's throughput.
    const fixedRate = Math.round(((allow[0]?.rps ?? 10_000) * 0.5) / 100) * 100;
    const paced = only.includes('allow') ? summarize(await http(redis, 'allow', fixedRate)) : [];
    const allowWrk = only.includes('allow') && HAS_WRK ? summarize(await http(redis, 'allow', 0, 'wrk')) : [];
    const flood = only.includes('flood') ? summarize(await http(redis, 'flood')) : [];
    const dps = only.includes('decisions') ? await decisions(redis) : [];
    const mem = only.includes('memory') ? await memory(redis) : [];
    const acc = only.includes('accuracy') ? await accuracy(redis) : [];
    console.log(`\nHTTP, every request allowed (${CONNECTIONS} connections, ${CLIENT_KEYS} keys, ${ROUNDS} x ${DURATION} s)`);
    console.table(allow.map(({ statuses: _s, ...r }) => r));
    console.log(`\nHTTP, every request allowed, load from wrk (${CONNECTIONS} connections, one thread, ${ROUNDS} x ${DURATION} s)`);
    if (HAS_WRK) console.table(allowWrk.map(({ statuses: _s, ...r }) => r));
    else console.log('wrk is not installed (Debian: apt-get install wrk): no second load generator in this run');
    console.log(`\nHTTP, every request allowed, paced at ${fixedRate} requests/s (latency without queueing)`);
    console.table(paced.map(({ statuses: _s, ...r }) => r));
    console.log('\nFlood: one key, 100 per minute');
    console.table(flood);
    console.log('\nDecisions per second (one process, 100 concurrent callers, 10,000 keys)');
    console.table(dps);
    console.log('\nRedis MEMORY USAGE per key, 8-character identity');
    console.table(mem);
    console.log('\nAccuracy: 4 processes x 1,000 decisions on one bucket of 1,000');
    console.table(acc);
    const result = {
      date: new Date().toISOString(),
      node: process.version,
      redis: (await new Redis(redis.url).info('server').then((s) => /redis_version:(\S+)/.exec(s)?.[1])) ?? 'unknown',
      durationSec: DURATION,
      rounds: ROUNDS,
      connections: CONNECTIONS,
      clientKeys: CLIENT_KEYS,
      allow,
      allowWrk,
      pacedRate: fixedRate,
      paced,
      flood,
      decisions: dps,
      memory: mem,
      accuracy: acc,
    };
    if (only.length === 5) writeFileSync(join(ROOT, 'bench', 'results', 'limiters.json'), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await redis.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
