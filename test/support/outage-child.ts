// One of several instances of an app sharing a Redis, limited by one policy of `limit` requests
// per second (sliding window) for every caller together, `failMode: 'local'`.
// argv: redisUrl prefix limit
// Prints `{"ready":true}` once listening. Then `load <ms> <loops>` sends requests to itself from
// `loops` loops for `ms` and prints every answer as `{"events":[[wall ms, outcome], ...]}`, the
// outcome as the limiter counted it (allowed, limited, local_allowed, local_limited, failed_...).
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import express from 'express';
import { createRateLimiter, createRedisClient, createRedisStore, errorHandler, type DecisionOutcome } from '../../src';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const [url = '', prefix = '', limit = '30'] = process.argv.slice(2);
  const client = createRedisClient(url);
  await once(client, 'ready');
  const events: [number, DecisionOutcome][] = [];
  const limiter = createRateLimiter({
    store: createRedisStore({ client }),
    prefix,
    // Three processes on two busy cores: a decision may wait its turn.
    deadlineMs: 1_000,
    fleet: { heartbeatMs: 200 },
    denyCache: false,
    observer: {
      decisionCounter: (_policy, outcome) => () => events.push([Date.now(), outcome]),
      decisionTimer: () => () => undefined,
      backendError: () => undefined,
      breakerChanged: () => undefined,
    },
    policies: { api: { algorithm: 'sliding_window', limit: Number(limit), windowSeconds: 1, key: () => 'everyone', failMode: 'local' } },
  });
  const app = express();
  app.get('/a', limiter.limit('api'), (_req, res) => {
    res.json({ ok: true });
  });
  app.use(errorHandler());
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  // Let the fleet's heartbeats count every instance before the parent starts.
  await sleep(1_000);
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, ms = '0', loops = '1'] = line.trim().split(' ');
    if (cmd !== 'load') continue;
    events.length = 0;
    const until = Date.now() + Number(ms);
    await Promise.all(
      Array.from({ length: Number(loops) }, async () => {
        while (Date.now() < until) {
          const res = await fetch(`http://127.0.0.1:${port}/a`);
          await res.arrayBuffer();
          await sleep(5);
        }
      }),
    );
    process.stdout.write(`${JSON.stringify({ events })}\n`);
  }
  server.close();
  await limiter.close();
  client.disconnect();
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exitCode = 1;
});
