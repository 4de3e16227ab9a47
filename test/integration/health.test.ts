import assert from 'node:assert/strict';
import { once } from 'node:events';
import express, { type Express } from 'express';
import request from 'supertest';
import { createHealth, createRedisClient, errorHandler, notFoundHandler, postgresCheck, redisCheck, type Health } from '../../src';
import { createDatabase } from '../../src/app/db/database';
import { TEST_DATABASE_URL } from '../support/postgres';
import { startRedisServer } from '../support/redis-server';
import { startTcpProxy } from '../support/tcp-proxy';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function appWith(health: Health): Express {
  const app = express();
  app.get('/health/live', health.live());
  app.get('/health/ready', health.ready());
  app.get('/health/started', health.started());
  app.use(notFoundHandler());
  app.use(errorHandler());
  return app;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

describe('health probes against real dependencies', function () {
  this.timeout(60_000);

  it('Postgres hung behind a proxy: /health/ready answers 503 within its timeout, one check in flight, recovers', async () => {
    const url = new URL(TEST_DATABASE_URL);
    const proxy = await startTcpProxy(Number(url.port || 5432), url.hostname);
    url.port = String(proxy.port);
    const db = createDatabase({ writeUrl: url.toString(), maxConnections: 4, connectTimeoutMs: 2000 });
    let runs = 0;
    const timeoutMs = 300;
    const health = createHealth({
      checks: [{ name: 'db', run: postgresCheck(db.write, timeoutMs), timeoutMs }],
      cacheMs: 100,
      onCheck: () => runs++,
    });
    const app = appWith(health);
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const ok = await request(base).get('/health/ready');
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.body, { status: 'healthy', db: 'connected' });

      proxy.setMode('blackhole');
      await sleep(150); // the cached healthy result expires
      const acceptedBefore = proxy.accepted;
      runs = 0;
      const latencies: number[] = [];
      // 200 probes, 20 at a time, against a Postgres that no longer answers.
      for (let batch = 0; batch < 10; batch++) {
        await Promise.all(
          Array.from({ length: 20 }, async () => {
            const t = performance.now();
            const res = await request(base).get('/health/ready');
            latencies.push(performance.now() - t);
            assert.equal(res.status, 503);
            assert.equal(res.body.status, 'unhealthy');
            assert.equal(res.body.db, 'disconnected');
            // Whichever timeout ends it first on a busy machine (the check's, the query's, the connect), it is one.
            assert.match(res.body.error.db, /timed out after 300 ms|no answer for \d+ ms|timeout/i);
          }),
        );
      }
      const p99 = percentile(latencies, 99);
      console.log(
        `      /health/ready with Postgres hung: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms over 200 probes; ${runs} checks ran`,
      );
      // Never waiting for the hung connection: every probe answered on the order of the check's
      // timeout (the figures above; bench/ has none to compare), with room for a busy machine.
      assert.ok(Math.max(...latencies) < timeoutMs * 10, `slowest probe ${Math.max(...latencies)} ms`);
      assert.ok(runs <= 12, `checks do not pile up: ${runs} runs for 200 probes`);
      assert.ok(proxy.accepted - acceptedBefore <= 4, 'no connection storm: bounded by the pool');

      proxy.setMode('forward');
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        await sleep(100);
        status = (await request(base).get('/health/ready')).status;
      }
      assert.equal(status, 200, 'ready again once Postgres answers');
    } finally {
      server.close();
      await db.close().catch(() => undefined);
      await proxy.close();
    }
  });

  it('Redis killed: /health/ready says which dependency failed; back to 200 when it returns', async () => {
    const redis = await startRedisServer();
    const client = createRedisClient(redis.url);
    await once(client, 'ready');
    const health = createHealth({ checks: [{ name: 'redis', run: redisCheck(client), timeoutMs: 300 }], cacheMs: 0 });
    const app = appWith(health);
    try {
      assert.deepEqual((await request(app).get('/health/ready')).body, { status: 'healthy', redis: 'connected' });
      await redis.kill();
      const down = await request(app).get('/health/ready');
      assert.equal(down.status, 503);
      assert.equal(down.body.redis, 'disconnected');
      assert.equal(typeof down.body.error.redis, 'string');
      assert.equal((await request(app).get('/health/live')).status, 200, 'liveness never looks at Redis');
      await redis.restart();
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        await sleep(100);
        status = (await request(app).get('/health/ready')).status;
      }
      assert.equal(status, 200);
    } finally {
      client.disconnect();
      await redis.stop();
    }
  });
});

describe('health probes (behaviour)', () => {
  it('runs at most one check per dependency at a time and answers a hung one within its timeout', async () => {
    let runs = 0;
    const health = createHealth({
      checks: [
        { name: 'hung', run: () => (runs++, new Promise<void>(() => undefined)), timeoutMs: 100 },
        { name: 'fine', run: () => Promise.resolve() },
      ],
      cacheMs: 0,
    });
    const app = appWith(health);
    // The hung check never settles: only its timeout can answer these probes.
    const answers = await Promise.all(Array.from({ length: 30 }, () => request(app).get('/health/ready')));
    for (const a of answers) {
      assert.equal(a.status, 503);
      assert.deepEqual([a.body.hung, a.body.fine], ['disconnected', 'connected']);
    }
    const later = await request(app).get('/health/ready');
    assert.match(later.body.error.hung, /no answer for \d+ ms/);
    assert.equal(runs, 1, 'the hung check was started once');
  });

  it('caches results briefly', async () => {
    let runs = 0;
    const health = createHealth({ checks: [{ name: 'db', run: async () => void runs++ }], cacheMs: 500 });
    const app = appWith(health);
    for (let i = 0; i < 5; i++) assert.equal((await request(app).get('/health/ready')).status, 200);
    assert.equal(runs, 1);
  });

  it('fails readiness at once during shutdown without touching dependencies; liveness stays 200', async () => {
    let shuttingDown = false;
    let runs = 0;
    const health = createHealth({ checks: [{ name: 'db', run: async () => void runs++ }], isShuttingDown: () => shuttingDown, cacheMs: 0 });
    const app = appWith(health);
    assert.equal((await request(app).get('/health/ready')).status, 200);
    shuttingDown = true;
    const ready = await request(app).get('/health/ready');
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.body, { status: 'unhealthy', reason: 'shutting_down' });
    assert.equal(runs, 1);
    assert.equal((await request(app).get('/health/live')).status, 200);
  });

  it('has no state shared between instances, and no body that grows between calls (terminus #77-style defects)', async () => {
    let redisUp = true;
    const a = appWith(createHealth({ checks: [{ name: 'db', run: async () => undefined }], cacheMs: 0 }));
    const b = appWith(
      createHealth({
        checks: [
          { name: 'pg', run: async () => undefined },
          {
            name: 'redis',
            run: async () => {
              if (!redisUp) throw new Error('down');
            },
          },
        ],
        cacheMs: 0,
      }),
    );
    assert.deepEqual((await request(a).get('/health/ready')).body, { status: 'healthy', db: 'connected' });
    assert.deepEqual((await request(b).get('/health/ready')).body, { status: 'healthy', pg: 'connected', redis: 'connected' });
    redisUp = false;
    assert.deepEqual((await request(b).get('/health/ready')).body, {
      status: 'unhealthy',
      pg: 'connected',
      redis: 'disconnected',
      error: { redis: 'down' },
    });
    redisUp = true;
    assert.deepEqual((await request(b).get('/health/ready')).body, { status: 'healthy', pg: 'connected', redis: 'connected' });
    assert.deepEqual((await request(a).get('/health/ready')).body, { status: 'healthy', db: 'connected' });
  });

  it('matches routes as Express does: a query string and HEAD work, other methods are 404', async () => {
    const app = appWith(createHealth({ checks: [] }));
    assert.equal((await request(app).get('/health/live?probe=1')).status, 200);
    assert.equal((await request(app).head('/health/live')).status, 200);
    const post = await request(app).post('/health/live');
    assert.equal(post.status, 404);
    assert.equal(post.body.error, 'NOT_FOUND');
    assert.equal((await request(app).get('/health/started')).status, 200);
  });

  it('reports not started until start-up finishes', async () => {
    let started = false;
    const app = appWith(createHealth({ checks: [], isStarted: () => started }));
    assert.equal((await request(app).get('/health/started')).status, 503);
    started = true;
    assert.deepEqual((await request(app).get('/health/started')).body, { status: 'started' });
  });
});
