// One of several processes sharing a Redis: an Express app limited by a quota (`/q`, 1,000 per
// UTC day) and a concurrency policy (`/c`, 10 in flight), all keyed to one identity.
// argv: redisUrl prefix identity leaseSeconds
// Prints `{"port":N}` once listening. Then each stdin line `run <path> <requests> <concurrency> <holdMs>`
// sends that many requests to itself and prints `{"admitted","limited","other","maxInFlight"}`.
// `/c` counts the requests inside its handler in Redis (INCR on entry, DECR before answering),
// so the largest INCR reply seen by any process is the most requests ever in flight at once.
// `/login` and `/t` settle their costs when the response ends (see the policies); `peek <policy>`
// prints `{"remaining"}` of the identity.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import express from 'express';
import { createRateLimiter, createRedisClient, createRedisStore, errorHandler } from '../../src';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const [url = '', prefix = '', identity = '', leaseSeconds = '30'] = process.argv.slice(2);
  const client = createRedisClient(url);
  await once(client, 'ready');
  const key = () => identity;
  const limiter = createRateLimiter({
    store: createRedisStore({ client }),
    prefix,
    // Four processes on two busy cores: a decision may wait its turn; a 503 would not be a decision.
    deadlineMs: 10_000,
    policies: {
      q: { algorithm: 'quota', limit: 1_000, period: 'day', key },
      c: { algorithm: 'concurrency', limit: 10, leaseSeconds: Number(leaseSeconds), key },
      // Reserve, then settle: only failed logins count; a reservation of 1,000 settled to what
      // the request really used. `login_ip` puts the decision across two slots on Cluster.
      login_ip: { algorithm: 'sliding_window', limit: 100_000, windowSeconds: 3600, key: () => `${identity}-ip` },
      login_credential: { algorithm: 'sliding_window', limit: 1_000, windowSeconds: 3600, key, settle: 'failures' },
      tokens: {
        algorithm: 'token_bucket',
        rps: 0.001,
        burst: 1_000_000,
        cost: 1_000,
        key,
        settle: (_req, res) => Number((res.locals as { used?: number }).used),
      },
    },
  });
  const inFlight = `${prefix}:inflight:{${identity}}`;
  let maxInFlight = 0;
  let holdMs = 0;
  const app = express();
  app.get('/q', limiter.limit('q'), (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/c', limiter.limit('c'), (_req, res, next) => {
    void (async () => {
      const n = await client.incr(inFlight);
      if (n > maxInFlight) maxInFlight = n;
      await sleep(holdMs);
      await client.decr(inFlight);
      res.json({ ok: true });
    })().catch(next);
  });
  // The nth request: a wrong password when n % 10 < 3 (300 of 1,000); uses (n × 7919) mod 1,001 tokens.
  const nth = (req: express.Request) => Number(req.query['n']);
  app.get('/login', limiter.limit('login_ip', 'login_credential'), (req, res) => {
    res.status(nth(req) % 10 < 3 ? 401 : 200).json({ ok: nth(req) % 10 >= 3 });
  });
  app.get('/t', limiter.limit('tokens'), (req, res) => {
    (res.locals as { used?: number }).used = (nth(req) * 7919) % 1001;
    res.json({ ok: true });
  });
  app.use(errorHandler());
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  process.stdout.write(`${JSON.stringify({ port })}\n`);

  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, path = '/q', requests = '0', concurrency = '1', hold = '0'] = line.trim().split(' ');
    if (cmd === 'peek') {
      // `peek <policy>`: what the identity has left, charging nothing.
      const peeked = await limiter.peek(path, { custom: identity });
      process.stdout.write(`${JSON.stringify({ remaining: peeked.remaining })}\n`);
      continue;
    }
    if (cmd !== 'run') continue;
    holdMs = Number(hold);
    maxInFlight = 0;
    let left = Number(requests);
    let n = 0;
    const counts = { admitted: 0, limited: 0, other: 0, failed: 0, used: 0 };
    await Promise.all(
      Array.from({ length: Number(concurrency) }, async () => {
        while (left > 0) {
          left--;
          const i = n++;
          const res = await fetch(`http://127.0.0.1:${port}${path}?n=${i}`);
          await res.arrayBuffer();
          if (path === '/t' && res.status === 200) counts.used += (i * 7919) % 1001;
          // A 401 is a wrong password, admitted by the limiter.
          if (res.status === 200 || res.status === 401) counts.admitted++;
          else if (res.status === 429) counts.limited++;
          else counts.other++;
          if (res.status === 401) counts.failed++;
        }
      }),
    );
    process.stdout.write(`${JSON.stringify({ ...counts, maxInFlight })}\n`);
  }
  server.close();
  await limiter.close();
  await client.quit();
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exitCode = 1;
});
