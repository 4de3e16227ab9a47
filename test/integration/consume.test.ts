// limiter.consume() on Redis, and docs/rate-limiting.md's three examples of it (a WebSocket
// server, a queue worker, a GraphQL resolver) run as the page shows them.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { createRateLimiter, createRedisStore, type RateLimiter } from '../../src';
import { graphqlExample, queueExample, websocketExample, type Job } from '../support/consume-examples';
import { startRedisServer, type RedisProcess } from '../support/redis-server';
import { TEST_DEADLINE_MS } from '../support/deadline';

describe('limiter.consume() on Redis, and the examples of docs/rate-limiting.md', function () {
  this.timeout(60_000);
  let redis: RedisProcess;
  let client: Redis;
  let limiter: RateLimiter;
  before(async () => {
    redis = await startRedisServer();
    client = new Redis(redis.port, '127.0.0.1');
    limiter = createRateLimiter({
      store: createRedisStore({ client }),
      deadlineMs: TEST_DEADLINE_MS,
      policies: {
        jobs: { algorithm: 'sliding_window', limit: 25, windowSeconds: 60, key: 'principal' },
        ws_messages: { algorithm: 'token_bucket', rps: 0.001, burst: 5, key: 'principal' },
        export_rows: { algorithm: 'quota', limit: 1000, period: 'hour', key: 'principal' },
        search_ip: { algorithm: 'sliding_window', limit: 10, windowSeconds: 60, key: 'ip' },
        search_user: { algorithm: 'sliding_window', limit: 3, windowSeconds: 60, key: 'principal' },
      },
    });
  });
  after(async () => {
    await limiter?.close();
    client?.disconnect();
    await redis?.stop();
  });

  it('admits exactly the limit under 50 concurrent callers, each decided by Redis or the deny cache', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, () => limiter.consume('jobs', 'tenant-1')));
    assert.equal(results.filter((r) => r.allowed).length, 25);
    assert.ok(results.every((r) => r.decidedBy === 'store' || r.decidedBy === 'deny_cache'));
    assert.equal((await client.keys('rl:jobs:*')).length, 1, 'one key: the principal’s');
  });

  it('the WebSocket example: 5 messages of a user echoed, the 6th answered RATE_LIMITED with a wait; another user unaffected', async () => {
    const server: Server = createServer();
    const wss = websocketExample(server, limiter);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const talk = async (user: string, n: number): Promise<string[]> => {
      const ws = new WebSocket(url, { headers: { 'x-user': user } });
      await once(ws, 'open');
      const replies: string[] = [];
      const all = new Promise<void>((resolve) =>
        ws.on('message', (m) => {
          replies.push(String(m));
          if (replies.length === n) resolve();
        }),
      );
      // One at a time, as a chat client sends them: each reply before the next message.
      for (let i = 0; i < n; i++) {
        const got = replies.length;
        ws.send(`m${i}`);
        while (replies.length === got) await new Promise((r) => setTimeout(r, 2));
      }
      await all;
      ws.close();
      return replies;
    };
    try {
      const replies = await talk('ana', 6);
      assert.deepEqual(replies.slice(0, 5), ['echo: m0', 'echo: m1', 'echo: m2', 'echo: m3', 'echo: m4']);
      const refused = JSON.parse(replies[5] as string) as { error: string; retry_after_ms: number };
      assert.equal(refused.error, 'RATE_LIMITED');
      assert.ok(refused.retry_after_ms > 0);
      assert.deepEqual(await talk('ben', 1), ['echo: m0']);
    } finally {
      wss.close();
      server.close();
    }
  });

  it('the queue example: exports run until the tenant’s 1,000 rows an hour, the next is put back with the wait, nothing lost', async () => {
    const ran: Job[] = [];
    const later: { job: Job; ms: number }[] = [];
    const work = queueExample(limiter, { retryIn: async (job, ms) => void later.push({ job, ms }) }, async (job) => void ran.push(job));
    const jobs: Job[] = [400, 400, 300, 150, 200].map((rows) => ({ tenant: 'acme', rows }));
    const outcomes: string[] = [];
    for (const job of jobs) outcomes.push(await work(job));
    // 400 + 400 fit (800); 300 does not (1,100), 150 does (950), 200 does not (1,150).
    assert.deepEqual(outcomes, ['done', 'done', 'later', 'done', 'later']);
    assert.deepEqual(
      ran.map((j) => j.rows),
      [400, 400, 150],
    );
    assert.deepEqual(
      later.map((l) => l.job.rows),
      [300, 200],
    );
    assert.ok(
      later.every((l) => l.ms > 0 && l.ms <= 3_600_000),
      JSON.stringify(later.map((l) => l.ms)),
    );
    assert.equal(await work({ tenant: 'other', rows: 900 }), 'done', 'another tenant has its own rows');
  });

  it('the GraphQL example: a user’s 4th search refused with extensions.code RATE_LIMITED; the address limit holds across users', async () => {
    const searched: string[] = [];
    const { Query } = graphqlExample(limiter, async (q) => {
      searched.push(q);
      return [`result for ${q}`];
    });
    const ctx = { ip: '192.0.2.10', userId: 'u-1' };
    for (let i = 0; i < 3; i++) assert.deepEqual(await Query.search(undefined, { q: `q${i}` }, ctx), [`result for q${i}`]);
    await assert.rejects(
      Query.search(undefined, { q: 'q3' }, ctx),
      (err: Error & { extensions?: { code?: string; retryAfterMs?: number } }) => {
        assert.equal(err.extensions?.code, 'RATE_LIMITED');
        assert.ok((err.extensions?.retryAfterMs ?? 0) > 0);
        return true;
      },
    );
    // Other users from the same address: the address's 10 are shared (3 used, one refusal took nothing).
    let admitted = 0;
    for (let u = 2; u < 6; u++) {
      for (let i = 0; i < 3; i++) {
        try {
          await Query.search(undefined, { q: 'x' }, { ip: '192.0.2.10', userId: `u-${u}` });
          admitted++;
        } catch {
          // refused: counted by what was admitted
        }
      }
    }
    assert.equal(admitted, 7, 'the address limit of 10, 3 already used');
    assert.equal(searched.length, 10);
  });
});
