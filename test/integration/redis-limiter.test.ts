import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import express, { type Express } from 'express';
import { Redis } from 'ioredis';
import request from 'supertest';
import { parseList } from 'structured-headers';
import {
  createMetrics,
  createRateLimiter,
  createRedisClient,
  createRedisStore,
  errorHandler,
  type PolicyOptions,
  type RateLimiter,
} from '../../src';
import { startRedisServer, TEST_REDIS_URL, type RedisProcess } from '../support/redis-server';
import { readmeExample } from '../support/readme-example';
import { waitUntil } from '../../scripts/wait';
import { DECIDE_SCRIPT, PERIOD_END_LUA, RELEASE_SCRIPT, SETTLE_SCRIPT } from '../../src/limit/redis/scripts';
import { quotaPeriodEnd } from '../../src/limit/algorithms';
import { TEST_DEADLINE_MS } from '../support/deadline';
import { limitedApp } from '../support/limiter-app';
import { STORE_CLIENTS } from '../support/store-clients';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function evalshaCalls(admin: Redis): Promise<number> {
  const info = await admin.info('commandstats');
  const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
  return calls('evalsha') + calls('eval');
}

describe('rate limiting on a real Redis', function () {
  this.timeout(60_000);
  let server: RedisProcess;
  let admin: Redis;

  before(async () => {
    server = await startRedisServer();
    admin = new Redis(server.port, '127.0.0.1');
    admin.on('error', () => undefined); // the server is killed on purpose below
  });
  after(async () => {
    admin?.disconnect();
    await server?.stop();
  });

  it("a denied request, however costly, takes nothing and never extends a key's life (denials cannot pin a key)", async () => {
    const client = new Redis(server.port, '127.0.0.1');
    const store = createRedisStore({ client });
    try {
      for (const [kind, check] of [
        [
          'bucket',
          (cost: number) => ({ key: 'rl:cost:{i:10.0.0.9}', algorithm: 'token_bucket' as const, intervalUs: 100_000, burst: 10, cost }),
        ],
        [
          'window',
          (cost: number) => ({ key: 'rl:costw:{i:10.0.0.9}', algorithm: 'sliding_window' as const, windowUs: 800_000, limit: 10, cost }),
        ],
      ] as const) {
        assert.equal((await store.decide([check(8)])).allowed, true, kind);
        const key = check(1).key;
        const value = async () =>
          (await admin.type(key)) === 'zset' ? JSON.stringify(await admin.zrange(key, '0', '-1')) : await admin.get(key);
        const before = await value();
        let pttl = await admin.pttl(key);
        assert.ok(pttl > 0 && pttl <= 800, `${kind}: PTTL ${pttl}`);
        for (let i = 0; i < 20; i++) {
          assert.equal((await store.decide([check(5)])).allowed, false, kind);
          const now = await admin.pttl(key);
          assert.ok(now <= pttl, `${kind}: a denial extended the key's life (${pttl} -> ${now} ms)`);
          pttl = now;
        }
        assert.equal(await value(), before, `${kind}: nothing taken`);
        await sleep(pttl + 50);
        assert.equal(await admin.exists(key), 0, `${kind}: the key expired on time`);
      }
    } finally {
      await store.close();
      client.disconnect();
    }
  });

  it('stores a token bucket as one integer with a millisecond TTL equal to time-to-full', async () => {
    const client = new Redis(server.port, '127.0.0.1');
    const store = createRedisStore({ client });
    try {
      const key = 'rl:public:{i:10.0.0.1}';
      await store.decide([{ key, algorithm: 'token_bucket', intervalUs: 100_000, burst: 20, cost: 1 }]); // 10 rps, burst 20
      await store.decide([{ key, algorithm: 'token_bucket', intervalUs: 100_000, burst: 20, cost: 1 }]);
      assert.equal(await admin.type(key), 'string');
      assert.match((await admin.get(key)) ?? '', /^\d{16}$/, 'one integer: the TAT in µs');
      assert.equal(await admin.object('ENCODING', key), 'int');
      // The TTL is the time-to-full: the TAT minus Redis' clock, read together.
      const [[, time], [, pttl], [, tat]] = (await admin.multi().time().pttl(key).get(key).exec()) as [
        [null, [string, string]],
        [null, number],
        [null, string],
      ];
      const nowUs = Number(time[0]) * 1e6 + Number(time[1]);
      assert.ok(pttl > 0 && pttl <= 200, `two tokens spent refill in at most 200 ms; PTTL ${pttl}`);
      assert.ok(
        Math.abs(pttl - (Number(tat) - nowUs) / 1000) <= 5,
        `PTTL ${pttl} ms is the time-to-full ${(Number(tat) - nowUs) / 1000} ms`,
      );
      const bytes = await admin.memory('USAGE', key);
      assert.ok(typeof bytes === 'number' && bytes > 0 && bytes <= 80, `MEMORY USAGE ${String(bytes)}`);
    } finally {
      await client.quit();
    }
  });

  it('stores a quota as one integer that expires when its period ends (PXAT); the Lua calendar agrees with JavaScript for every month', async () => {
    const client = new Redis(server.port, '127.0.0.1');
    const store = createRedisStore({ client });
    try {
      const key = `rl:daily:{${randomBytes(4).toString('hex')}}`; // an 8-character identity
      const check = { key, algorithm: 'quota' as const, periodUs: 86_400_000_000, limit: 10_000, cost: 3 };
      await store.decide([check]);
      await store.decide([check]);
      assert.equal(await admin.get(key), '6');
      assert.equal(await admin.object('ENCODING', key), 'int');
      const nextMidnight = quotaPeriodEnd(Date.now() * 1000, 86_400_000_000) / 1000;
      assert.equal(await admin.pexpiretime(key), nextMidnight - 1, 'gone from the last millisecond of the UTC day on');
      // Bytes: a dictEntry (24) + the value object (16) + the key's allocation (32 for 13 to 28
      // characters: jemalloc's size classes). The token bucket key is the same size.
      const bytes = await admin.memory('USAGE', key);
      assert.equal(bytes, 72, `MEMORY USAGE ${String(bytes)}`);
      // Named short (prefix r, policy q: 14 characters), a key costs 56 bytes.
      const short = `r:q:{${randomBytes(4).toString('hex')}}`;
      await store.decide([{ ...check, key: short }]);
      assert.equal(await admin.memory('USAGE', short), 56);
      await admin.del(short);

      // The script's calendar (civil-from-days in Lua) against JavaScript's, for a moment in
      // every month from 1970 to 2100 (leap years, centuries, December to January) and its ends.
      const lua = `${PERIOD_END_LUA}\nlocal out = {}\nfor i = 1, #ARGV do out[i] = period_end(tonumber(ARGV[i]), 0) end\nreturn out`;
      const moments: number[] = [];
      for (let y = 1970; y <= 2100; y++) {
        for (let m = 0; m < 12; m++) {
          const start = Date.UTC(y, m, 1);
          const end = Date.UTC(y, m + 1, 1);
          moments.push(start * 1000, (start + Math.floor((end - start) / 3)) * 1000, end * 1000 - 1);
        }
      }
      const got = (await admin.eval(lua, 0, ...moments.map(String))) as number[];
      const expected = moments.map((t) => quotaPeriodEnd(t, 0));
      const wrong = moments.filter((_, i) => got[i] !== expected[i]).map((t) => new Date(t / 1000).toISOString());
      assert.deepEqual(wrong, [], 'moments whose month end differs');
      assert.equal(got.length, 131 * 12 * 3);
    } finally {
      await client.quit();
    }
  });

  it('closing a store takes its listeners (recovery, script loading) off the client it was given', async () => {
    const client = new Redis(server.port, '127.0.0.1');
    try {
      if (client.status !== 'ready') await once(client, 'ready'); // ioredis's own listeners settle
      const before = client.listenerCount('ready');
      const store = createRedisStore({ client });
      const limiter = createRateLimiter({
        deadlineMs: TEST_DEADLINE_MS,
        store,
        policies: { p: { algorithm: 'token_bucket', rps: 1, burst: 1 } },
      });
      // The limiter's recovery (its breakers) and the store's script loading.
      assert.equal(client.listenerCount('ready'), before + 2, 'the limiter and the store listen for reconnects');
      await limiter.close();
      await store.close();
      assert.equal(client.listenerCount('ready'), before);
    } finally {
      await client.quit();
    }
  });

  for (const [label, open] of STORE_CLIENTS) {
    it(`loads its scripts up front and again after a reconnect, before any decision asks: no NOSCRIPT after SCRIPT FLUSH and a reconnect (${label})`, async () => {
      const shas = [DECIDE_SCRIPT, SETTLE_SCRIPT, RELEASE_SCRIPT].map((lua) => createHash('sha1').update(lua).digest('hex'));
      const loaded = async () => ((await admin.script('EXISTS', ...shas)) as number[]).every((x) => x === 1);
      const noscripts = async () => Number(/errorstat_NOSCRIPT:count=(\d+)/.exec(await admin.info('errorstats'))?.[1] ?? 0);
      await admin.script('FLUSH');
      const opened = await open('127.0.0.1', server.port);
      const store = createRedisStore({ client: opened.client });
      try {
        await waitUntil('the scripts loaded without a decision', loaded, 10_000, 10);
        await admin.script('FLUSH');
        assert.equal(await loaded(), false);
        // The store's connection is cut (the admin's is kept): the client reconnects by itself.
        await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
        await waitUntil('the scripts loaded again after the reconnect', loaded, 10_000, 10);
        const before = await noscripts();
        const check = { key: `rl:preload:{${label}}`, algorithm: 'token_bucket' as const, intervalUs: 1_000_000, burst: 5, cost: 1 };
        assert.equal((await store.decide([check])).allowed, true);
        assert.equal(await noscripts(), before, 'no NOSCRIPT');
      } finally {
        await store.close();
        await opened.close();
      }
    });

    it(`reloads the script after SCRIPT FLUSH (NOSCRIPT), once (${label})`, async () => {
      const opened = await open('127.0.0.1', server.port);
      const store = createRedisStore({ client: opened.client });
      try {
        const check = {
          key: `rl:t:{${randomBytes(4).toString('hex')}}`,
          algorithm: 'token_bucket' as const,
          intervalUs: 1_000_000,
          burst: 5,
          cost: 1,
        };
        assert.equal((await store.decide([check])).allowed, true);
        await admin.script('FLUSH');
        const stats = async () => {
          const info = `${await admin.info('commandstats')}${await admin.info('errorstats')}`;
          const n = (re: RegExp) => Number(re.exec(info)?.[1] ?? 0);
          return { evals: n(/cmdstat_eval:calls=(\d+)/), noscript: n(/errorstat_NOSCRIPT:count=(\d+)/) };
        };
        const before = await stats();
        const d = await store.decide([check]);
        assert.equal(d.allowed, true);
        assert.equal(d.remaining[0], 3, 'state survived: only the script cache was flushed');
        const after = await stats();
        assert.deepEqual([after.noscript - before.noscript, after.evals - before.evals], [1, 1], 'one NOSCRIPT, one EVAL');
        assert.equal((await store.decide([check])).remaining[0], 2, 'EVALSHA works again');
        assert.equal((await stats()).evals, after.evals, 'no further EVAL');
      } finally {
        await opened.close();
      }
    });

    it(`keeps deciding under load through repeated SCRIPT FLUSH: no decision or release fails, every NOSCRIPT is answered by a reload (${label})`, async () => {
      const opened = await open('127.0.0.1', server.port);
      const store = createRedisStore({ client: opened.client });
      const noscripts = async () => Number(/errorstat_NOSCRIPT:count=(\d+)/.exec(await admin.info('errorstats'))?.[1] ?? 0);
      const before = await noscripts();
      const failures: string[] = [];
      let decided = 0;
      let released = 0;
      let running = true;
      const tag = randomBytes(4).toString('hex');
      // 64 callers, each a token bucket and a concurrency lease per decision (decide, then release).
      const caller = async (i: number) => {
        while (running) {
          const checks = [
            { key: `rl:flush:{${tag}${i}}`, algorithm: 'token_bucket' as const, intervalUs: 1_000, burst: 1_000_000, cost: 1 },
            {
              key: `rl:flush-c:{${tag}${i}}`,
              algorithm: 'concurrency' as const,
              leaseUs: 60_000_000,
              limit: 1_000,
              cost: 1,
              lease: `${i}-${decided}`,
            },
          ];
          try {
            const d = await store.decide(checks);
            decided++;
            if (!d.allowed) failures.push(`denied: ${JSON.stringify(d)}`);
            await store.release?.(checks);
            released++;
          } catch (err) {
            failures.push((err as Error).message);
          }
        }
      };
      const callers = Array.from({ length: 64 }, (_, i) => caller(i));
      // Each flush comes after the callers have made 64 more decisions (by observation, not a
      // sleep: a busy machine only makes it take longer), and the run ends 64 decisions after the last.
      const progress = async () => {
        const from = decided;
        await waitUntil('64 more decisions', async () => decided - from >= 64 || failures.length > 0, 30_000, 5);
      };
      try {
        for (let f = 0; f < 10; f++) {
          await progress();
          await admin.script('FLUSH');
        }
        await progress();
      } finally {
        running = false;
        await Promise.all(callers);
        await opened.close();
      }
      const hit = (await noscripts()) - before;
      console.log(`      ${decided} decisions and ${released} releases through 10 SCRIPT FLUSH; ${hit} NOSCRIPT replies, each reloaded`);
      assert.deepEqual(failures.slice(0, 5), []);
      assert.ok(hit >= 2, `the flushes reached the store's calls (${hit} NOSCRIPT)`);
      assert.ok(decided > 100, `${decided} decisions`);
    });
  }

  it('sends the decisions of one turn as one call; with nothing in flight, a turn of 32 or more as two, in order', async () => {
    const client = new Redis(server.port, '127.0.0.1');
    const store = createRedisStore({ client });
    const calls = async () => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);
    const bucket = (key: string, burst: number) => ({ key, algorithm: 'token_bucket' as const, intervalUs: 3_600_000_000, burst, cost: 1 });
    try {
      await store.decide([bucket(`rl:t:{${randomBytes(4).toString('hex')}}`, 1)]); // the script is loaded
      let before = await calls();
      await Promise.all(Array.from({ length: 31 }, () => store.decide([bucket(`rl:t:{${randomBytes(4).toString('hex')}}`, 1)])));
      assert.equal((await calls()) - before, 1, '31 decisions of one turn: one call');

      // One key, 40 decisions in one turn, burst 30: split 20 + 20, still decided in order.
      const key = `rl:t:{${randomBytes(4).toString('hex')}}`;
      before = await calls();
      const decisions = await Promise.all(Array.from({ length: 40 }, () => store.decide([bucket(key, 30)])));
      assert.equal((await calls()) - before, 2, '40 decisions with nothing in flight: two calls');
      assert.deepEqual(
        decisions.map((d) => d.allowed),
        Array.from({ length: 40 }, (_, i) => i < 30),
        'the first 30 admitted, in the order they were asked',
      );
      assert.deepEqual(
        decisions.slice(0, 30).map((d) => d.remaining[0]),
        Array.from({ length: 30 }, (_, i) => 29 - i),
      );

      // More than two full calls' worth: calls of at most maxBatch (128), no split.
      before = await calls();
      await Promise.all(Array.from({ length: 300 }, () => store.decide([bucket(`rl:t:{${randomBytes(4).toString('hex')}}`, 1)])));
      assert.equal((await calls()) - before, 3, '300 decisions: 128 + 128 + 44');
    } finally {
      await client.quit();
    }
  });

  it('admits exactly the burst when 4 processes hammer one bucket', async () => {
    const key = `rl:race:{${randomBytes(4).toString('hex')}}`;
    const burst = 150;
    const children = Array.from({ length: 4 }, () =>
      spawn(
        process.execPath,
        [
          '--require',
          require.resolve('tsx/cjs'),
          join(__dirname, '..', 'support', 'hammer.ts'),
          server.url,
          key,
          '200',
          '50',
          '0.001',
          String(burst),
        ],
        {
          stdio: ['pipe', 'pipe', 'inherit'],
        },
      ),
    );
    const outputs = children.map(
      (c) =>
        new Promise<string>((resolve, reject) => {
          let out = '';
          c.stdout.on('data', (d: Buffer) => (out += d.toString()));
          c.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`hammer exited ${code}`))));
        }),
    );
    await sleep(1500); // let every process connect
    for (const c of children) c.stdin.end('go\n');
    const admitted = (await Promise.all(outputs)).map((o) => Number(o.trim()));
    assert.equal(admitted.length, 4);
    assert.equal(
      admitted.reduce((a, b) => a + b, 0),
      burst,
      `per process: ${admitted.join(', ')}`,
    );
  });

  describe('the middleware', () => {
    const policies: Record<string, PolicyOptions> = {
      closed: { algorithm: 'token_bucket', rps: 1, burst: 2, key: 'ip', failMode: 'closed' },
      open: { algorithm: 'token_bucket', rps: 1, burst: 2, key: 'ip', failMode: 'open' },
      login: { algorithm: 'sliding_window', limit: 3, windowSeconds: 60, key: 'credential' },
    };

    function appFor(limiter: RateLimiter): Express {
      const app = express();
      app.use(express.json());
      app.get('/closed', limiter.limit('closed'), (_req, res) => res.json({ ok: true }));
      app.get('/open', limiter.limit('open'), (_req, res) => res.json({ ok: true }));
      app.post('/login', limiter.limit('closed', 'login'), (_req, res) => res.json({ ok: true }));
      app.use(errorHandler());
      return app;
    }

    it('sends draft-10 RateLimit headers that parse as RFC 9651 lists, and 429 with Retry-After', async () => {
      const client = createRedisClient(server.url);
      await once(client, 'ready');
      const limiter = createRateLimiter({
        deadlineMs: TEST_DEADLINE_MS,
        store: createRedisStore({ client }),
        policies,
        prefix: `t${randomBytes(3).toString('hex')}`,
      });
      try {
        const app = appFor(limiter);
        const ok = await request(app).post('/login').send({ username: 'alice' });
        assert.equal(ok.status, 200);
        const policy = parseList(String(ok.headers['ratelimit-policy']));
        assert.deepEqual(
          policy.map(([name, params]) => [name, Object.fromEntries(params)]),
          [
            ['closed', { q: 2, w: 2 }],
            ['login', { q: 3, w: 60 }],
          ],
        );
        const state = parseList(String(ok.headers['ratelimit']));
        assert.deepEqual(
          state.map(([name, params]) => [name, params.get('r')]),
          [
            ['closed', 1],
            ['login', 2],
          ],
        );
        assert.ok(state.every(([, params]) => Number.isInteger(params.get('t')) && (params.get('t') as number) >= 0));

        await request(app).post('/login').send({ username: 'alice' });
        const limited = await request(app).post('/login').send({ username: 'alice' });
        assert.equal(limited.status, 429);
        assert.equal(limited.body.error, 'RATE_LIMITED');
        assert.equal(limited.body.policy, 'closed');
        const retry = Number(limited.headers['retry-after']);
        assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 1, `Retry-After ${retry}`);
        assert.equal(limited.body.retry_after, retry);
        const deniedState = parseList(String(limited.headers['ratelimit']));
        assert.equal(deniedState[0]?.[1].get('r'), 0);
      } finally {
        await limiter.close();
        await client.quit();
      }
    });

    it("README: 20/s with bursts of 40 AND 10,000 per UTC day on one identity, all-or-nothing: the burst's refusal takes nothing from the day, the day's refusal nothing from the burst", async () => {
      const client = createRedisClient(server.url);
      await once(client, 'ready');
      const prefix = `t${randomBytes(3).toString('hex')}`;
      const store = createRedisStore({ client });
      const limiter = createRateLimiter({
        deadlineMs: TEST_DEADLINE_MS,
        store,
        prefix,
        policies: {
          api_burst: { algorithm: 'token_bucket', rps: 20, burst: 40, key: 'ip' },
          api_daily: { algorithm: 'quota', limit: 10_000, period: 'day', key: 'ip' },
        },
      });
      const state = (res: request.Response) =>
        Object.fromEntries(parseList(String(res.headers['ratelimit'])).map(([name, params]) => [String(name), params.get('r')]));
      try {
        const app = limitedApp(limiter.limit('api_burst', 'api_daily'), { path: '/api' });
        const first = await request(app).get('/api');
        assert.equal(first.status, 200);
        assert.equal(first.headers['ratelimit-policy'], '"api_burst";q=40;w=2, "api_daily";q=10000;w=86400');
        let admitted = 1;
        let limited = await request(app).get('/api');
        while (limited.status === 200 && admitted < 500) {
          admitted++;
          limited = await request(app).get('/api');
        }
        assert.equal(limited.status, 429);
        assert.equal(limited.body.policy, 'api_burst');
        assert.ok(admitted >= 40, `the burst admitted ${admitted}`);
        assert.equal(state(limited)['api_daily'], 10_000 - admitted, 'the day counts exactly the admitted requests');
        const [ipKey] = await admin.keys(`${prefix}:api_daily:*`);
        assert.equal(Number(await admin.get(ipKey as string)), admitted);

        // The day's quota spent (the store, at the same key): the burst has room, the day refuses.
        await sleep(1_000); // 20 tokens back
        await store.decide([
          { key: ipKey as string, algorithm: 'quota', periodUs: 86_400_000_000, limit: 10_000, cost: 10_000 - admitted },
        ]);
        const byDay = await request(app).get('/api');
        assert.equal(byDay.status, 429);
        assert.equal(byDay.body.policy, 'api_daily');
        const toMidnight = (quotaPeriodEnd(Date.now() * 1000, 86_400_000_000) / 1000 - Date.now()) / 1000;
        assert.ok(Math.abs(Number(byDay.headers['retry-after']) - toMidnight) <= 2, `Retry-After ${byDay.headers['retry-after']}`);
        const burstLeft = state(byDay)['api_burst'] as number;
        assert.ok(burstLeft >= 19, `the burst had room (r=${burstLeft})`);
        const again = state(await request(app).get('/api'))['api_burst'] as number;
        assert.ok(again >= burstLeft, 'the day refused: the burst was not charged');
      } finally {
        await limiter.close();
        await client.quit();
      }
    });

    it('remembers a denied key: a flood costs no Redis calls until the retry time', async () => {
      const client = createRedisClient(server.url);
      await once(client, 'ready');
      const limiter = createRateLimiter({
        deadlineMs: TEST_DEADLINE_MS,
        store: createRedisStore({ client }),
        // One token per 5 s: the flood below ends long before the next one, on a busy machine too.
        policies: { ...policies, closed: { ...policies['closed'], rps: 0.2 } as PolicyOptions },
        prefix: `t${randomBytes(3).toString('hex')}`,
      });
      try {
        const app = appFor(limiter);
        for (let i = 0; i < 2; i++) assert.equal((await request(app).get('/closed')).status, 200);
        const denied = await request(app).get('/closed');
        assert.equal(denied.status, 429);
        const before = await evalshaCalls(admin);
        const flood = await Promise.all(Array.from({ length: 100 }, () => request(app).get('/closed')));
        assert.deepEqual(
          flood.filter((r) => r.status !== 429 || !(Number(r.headers['retry-after']) >= 1)).map((r) => r.status),
          [],
          'every request of the flood refused with a Retry-After',
        );
        assert.equal(await evalshaCalls(admin), before, 'no script call for a remembered denial');
        await sleep(Number(denied.headers['retry-after']) * 1000 + 100);
        assert.equal((await request(app).get('/closed')).status, 200, 'admitted again after the retry time');
      } finally {
        await limiter.close();
        await client.quit();
      }
    });

    for (const [name, policy] of [
      ['sliding window', { algorithm: 'sliding_window', limit: 2, windowSeconds: 60, key: 'ip', failMode: 'closed' }],
      ['sliding window counter', { algorithm: 'sliding_window_counter', limit: 2, windowSeconds: 86_400, key: 'ip', failMode: 'closed' }],
      ['token bucket', { algorithm: 'token_bucket', rps: 0.01, burst: 2, key: 'ip', failMode: 'closed' }],
    ] as const) {
      it(`${name}: a decision answered 503 at the deadline takes nothing, even when Redis admits it late (a retry is not charged twice)`, async () => {
        const client = createRedisClient(server.url);
        await once(client, 'ready');
        const limiter = createRateLimiter({
          store: createRedisStore({ client }),
          policies: { two: policy },
          deadlineMs: 100,
          breaker: { volumeThreshold: 100 },
          prefix: `t${randomBytes(3).toString('hex')}`,
        });
        try {
          const app = limitedApp(limiter.limit('two'), { path: '/two' });
          // Scripts wait while writes are paused: the decision outlives its deadline, then runs.
          await admin.call('CLIENT', 'PAUSE', '400', 'WRITE');
          const late = await request(app).get('/two');
          assert.equal(late.status, 503);
          assert.equal(late.body.error, 'RATE_LIMITER_UNAVAILABLE');
          await sleep(700); // the pause is over, the late admission and its give-back have run
          const statuses = [];
          for (let i = 0; i < 3; i++) statuses.push((await request(app).get('/two')).status);
          assert.deepEqual(statuses, [200, 200, 429], "both of the limit's admissions are still there");
        } finally {
          await admin.call('CLIENT', 'UNPAUSE');
          await limiter.close();
          await client.quit();
        }
      });
    }

    it('a caller of the store that passes only an AbortSignal: an admission that lands after the abort is given back', async () => {
      const client = createRedisClient(server.url);
      await once(client, 'ready');
      const store = createRedisStore({ client });
      const check = {
        key: `t${randomBytes(3).toString('hex')}:signal`,
        cost: 1,
        algorithm: 'token_bucket',
        intervalUs: 100_000_000,
        burst: 2,
      } as const;
      try {
        await admin.call('CLIENT', 'PAUSE', '300', 'WRITE');
        const controller = new AbortController();
        const decision = store.decide([check], { signal: controller.signal });
        setTimeout(() => controller.abort(new Error('the caller gave up')), 50);
        assert.equal((await decision).allowed, true, 'the store still answers what Redis said');
        await sleep(300); // the give-back runs in the background
        const next = [await store.decide([check]), await store.decide([check]), await store.decide([check])];
        assert.deepEqual(
          next.map((d) => [d.allowed, d.remaining[0]]),
          [
            [true, 1],
            [true, 0],
            [false, 0],
          ],
          'both tokens were there again: the late admission was not charged',
        );
      } finally {
        await admin.call('CLIENT', 'UNPAUSE');
        await store.close();
        await client.quit();
      }
    });

    it('Redis killed: closed policy 503 within the deadline, open policy 200; the breaker opens, then closes when Redis is back', async () => {
      const metrics = createMetrics({ processMetrics: false });
      const client = createRedisClient(server.url);
      await once(client, 'ready');
      const deadlineMs = 100;
      const limiter = createRateLimiter({
        store: createRedisStore({ client }),
        policies,
        deadlineMs,
        observer: metrics.rateLimit,
        breaker: { resetTimeoutMs: 500, volumeThreshold: 3 },
        prefix: `t${randomBytes(3).toString('hex')}`,
      });
      try {
        const app = appFor(limiter);
        assert.equal((await request(app).get('/closed')).status, 200);
        await server.kill();
        const slowest = { ms: 0 };
        for (let i = 0; i < 10; i++) {
          const t = Date.now();
          const closed = await request(app).get('/closed');
          slowest.ms = Math.max(slowest.ms, Date.now() - t);
          assert.equal(closed.status, 503);
          assert.equal(closed.body.error, 'RATE_LIMITER_UNAVAILABLE');
          assert.equal(closed.headers['retry-after'], '1');
          const open = await request(app).get('/open');
          assert.equal(open.status, 200);
        }
        // Answered without waiting for Redis to come back (it does not, here); the figure is logged.
        console.log(`      Redis killed: slowest closed answer ${slowest.ms} ms (deadline ${deadlineMs} ms)`);
        assert.ok(slowest.ms < deadlineMs + 5_000, `slowest closed answer ${slowest.ms} ms`);
        assert.equal(limiter.breakerState, 'OPEN');
        const text = await metrics.registry.metrics();
        assert.match(text, /rampart_rate_limit_decisions_total\{policy="closed",outcome="failed_closed"\} 10/);
        assert.match(text, /rampart_rate_limit_decisions_total\{policy="open",outcome="failed_open"\} 10/);
        assert.match(text, /rampart_rate_limit_breaker_state\{store="redis"\} 1/);
        assert.match(text, /rampart_rate_limit_backend_errors_total\{store="redis",reason="breaker_open",shard=""\} \d+/);
        assert.match(text, /rampart_rate_limit_shard_breaker_state\{store="redis",shard=""\} 1/);

        await server.restart();
        const until = Date.now() + 10_000;
        let status = 0;
        while (Date.now() < until) {
          status = (await request(app).get('/closed')).status;
          if (status === 200) break;
          await sleep(100);
        }
        assert.equal(status, 200, 'decisions resume once Redis is back');
        assert.equal(limiter.breakerState, 'CLOSED');
        assert.match(await metrics.registry.metrics(), /rampart_rate_limit_breaker_state\{store="redis"\} 0/);
      } finally {
        await limiter.close();
        client.disconnect();
      }
    });

    it('dev fail-open lets closed policies through while Redis is down', async () => {
      const dead = await startRedisServer();
      const client = createRedisClient(dead.url);
      const limiter = createRateLimiter({ store: createRedisStore({ client }), policies, devFailOpen: true });
      try {
        await dead.kill();
        const res = await request(appFor(limiter)).get('/closed');
        assert.equal(res.status, 200);
        assert.equal(res.headers['ratelimit'], undefined, 'no headers without a decision');
      } finally {
        await limiter.close();
        client.disconnect();
        await dead.stop();
      }
    });

    it('starts with Redis down (never crashes) and applies the fail mode from the first request', async () => {
      const dead = await startRedisServer();
      await dead.kill();
      const errors: Error[] = [];
      const client = createRedisClient(dead.url, { onError: (e) => errors.push(e) });
      const limiter = createRateLimiter({ store: createRedisStore({ client }), policies });
      try {
        const app = appFor(limiter);
        assert.equal((await request(app).get('/closed')).status, 503);
        assert.equal((await request(app).get('/open')).status, 200);
        await sleep(300);
        assert.ok(errors.length > 0, 'connection errors are reported, not thrown');
      } finally {
        await limiter.close();
        client.disconnect();
        await dead.stop();
      }
    });
  });
});

describe(`the README's usage example on standalone Redis (${TEST_REDIS_URL})`, () => {
  it("limit('login_ip', 'login_credential'): the 6th login for one username is 429 login_credential; other usernames go on until login_ip's 20", async () => {
    const ex = readmeExample(TEST_REDIS_URL, `rx${randomBytes(3).toString('hex')}`);
    try {
      await waitUntil('the client to be ready', async () => ex.client.status === 'ready', 10_000, 20);
      const ip = '198.51.100.78';
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++)
        statuses.push((await request(ex.app).post('/login').set('X-Forwarded-For', ip).send({ username: 'alice' })).status);
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
      const more: number[] = [];
      for (let i = 0; i < 16; i++)
        more.push(
          (
            await request(ex.app)
              .post('/login')
              .set('X-Forwarded-For', ip)
              .send({ username: `bob${i}` })
          ).status,
        );
      assert.deepEqual(more, [...Array<number>(15).fill(200), 429]);
    } finally {
      await ex.close();
    }
  });
});
