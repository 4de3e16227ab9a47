// One of several processes sharing a Redis: an Express app limited by a quota (`/q`, 1,000 per
// UTC day) and a concurrency policy (`/c`, 10 in flight), all keyed to one identity.
// argv: redisUrl prefix identity leaseSeconds
// Prints `{"port":N}` once listening. Then each stdin line `run <path> <requests> <concurrency> <holdMs>`
// sends that many requests to itself and prints `{"admitted","limited","other","maxInFlight"}`.
// `/c` counts the requests inside its handler in Redis (INCR on entry, DECR before answering),
// so the largest INCR reply seen by any process is the most requests ever in flight at once.
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
  app.use(errorHandler());
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  process.stdout.write(`${JSON.stringify({ port })}\n`);

  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, path = '/q', requests = '0', concurrency = '1', hold = '0'] = line.trim().split(' ');
    if (cmd !== 'run') continue;
    holdMs = Number(hold);
    maxInFlight = 0;
    let left = Number(requests);
    const counts = { admitted: 0, limited: 0, other: 0 };
    await Promise.all(
      Array.from({ length: Number(concurrency) }, async () => {
        while (left > 0) {
          left--;
          const res = await fetch(`http://127.0.0.1:${port}${path}`);
          await res.arrayBuffer();
          if (res.status === 200) counts.admitted++;
          else if (res.status === 429) counts.limited++;
          else counts.other++;
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
