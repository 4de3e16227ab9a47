import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createHealth, createMetrics, loadConfig } from '../../src';
import { createApp } from '../../src/app/app';
import { createDatabase, databaseChecks, type Database } from '../../src/app/db/database';
import { migrate } from '../../src/app/db/migrations';
import { createLogger } from '../../src/app/logger';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from '../support/postgres';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Answer {
  readonly at: number;
  readonly path: string;
  readonly status: number;
  readonly ms: number;
  readonly error?: string;
  readonly retryAfter: string | null;
}

/**
 * The sample API's pools behind their circuit breakers, Postgres partitioned (a proxy that goes
 * silent) under load: database-bound requests wait at most the breaker's call timeout until it
 * opens, then are refused at once (503 DATABASE_UNAVAILABLE, Retry-After), routes that do not
 * touch the database keep answering 200, readiness says the breaker is open, and after the
 * partition heals the first query succeeds within the open time plus one trial call.
 */
describe('the database behind circuit breakers: Postgres partitioned under load', function () {
  this.timeout(60_000);
  const TIMEOUT_MS = 400;
  const RESET_MS = 1_500;
  let schema: TestSchema;
  let proxy: TcpProxy;
  let db: Database;
  let server: Server;
  let base: string;
  const metrics = createMetrics({ processMetrics: false });

  before(async () => {
    schema = await createTestSchema('breaker');
    const url = new URL(TEST_DATABASE_URL);
    proxy = await startTcpProxy(Number(url.port || 5432), url.hostname);
    db = createDatabase({
      writeUrl: schema.url.replace(`${url.hostname}:${url.port || 5432}`, `127.0.0.1:${proxy.port}`),
      schema: schema.name,
      maxConnections: 4,
      breaker: { preset: 'balanced', timeoutMs: TIMEOUT_MS, resetTimeoutMs: RESET_MS },
      breakerObserver: metrics.breakers,
    });
    metrics.observePool('db_write', db.write);
    await migrate(db.write, db.schema);
    const health = createHealth({ checks: databaseChecks(db, 300), cacheMs: 0 });
    const app = createApp({
      config: loadConfig({ RATE_LIMIT_ENABLED: 'false' }),
      db,
      logger: createLogger('silent'),
      health,
      version: 'test',
      metrics,
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server?.close();
    await db?.close();
    await proxy?.close();
    await schema?.drop();
  });

  for (const [run, mode] of (['blackhole', 'refuse'] as const).entries())
    it(`Postgres ${mode === 'blackhole' ? 'partitioned (silent)' : 'refusing connections'}: refused at once once open (503 with Retry-After, never the request deadline), routes without the database keep serving, recovery within the open time plus a trial`, async () => {
      const username = `breaker_${mode}`;
      const register = await fetch(`${base}/v1/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password: 'a-long-enough-password' }),
      });
      assert.equal(register.status, 201);
      const login = await fetch(`${base}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password: 'a-long-enough-password' }),
      });
      const token = ((await login.json()) as { token: string }).token;

      const answers: Answer[] = [];
      let running = true;
      const worker = async (path: string, headers: Record<string, string>) => {
        while (running) {
          const t = performance.now();
          const res = await fetch(`${base}${path}`, { headers });
          const body = (await res.json()) as { error?: string };
          answers.push({
            at: t,
            path,
            status: res.status,
            ms: performance.now() - t,
            ...(body.error === undefined ? {} : { error: body.error }),
            retryAfter: res.headers.get('retry-after'),
          });
          await sleep(10);
        }
      };
      const auth = { authorization: `Bearer ${token}` };
      const workers = [0, 1, 2, 3].map(() => worker('/v1/notes', auth));
      workers.push(worker('/v1/status', {}));
      await sleep(500);

      const partitioned = performance.now();
      proxy.setMode(mode);
      proxy.resetAll();
      // Until the breaker is open, then a while of it open.
      while (db.breakers.write.state !== 'OPEN' && performance.now() - partitioned < 20_000) await sleep(20);
      const opened = performance.now();
      assert.equal(db.breakers.write.state, 'OPEN');
      const ready = await fetch(`${base}/health/ready`);
      const readyBody = (await ready.json()) as { status: string; error?: Record<string, string> };
      const exposition = await metrics.registry.metrics();
      await sleep(1_000);
      const healing = performance.now();
      proxy.setMode('forward');
      let firstOk = Infinity;
      while (performance.now() - healing < 10_000) {
        const ok = answers.find((a) => a.path === '/v1/notes' && a.at >= healing && a.status === 200);
        if (ok !== undefined) {
          firstOk = ok.at + ok.ms - healing;
          break;
        }
        await sleep(20);
      }
      running = false;
      await Promise.all(workers);

      const whileOpen = answers.filter((a) => a.path === '/v1/notes' && a.at >= opened + 50 && a.at < healing);
      const beforeOpen = answers.filter((a) => a.path === '/v1/notes' && a.at >= partitioned && a.at < opened);
      const status = answers.filter((a) => a.path === '/v1/status' && a.at >= partitioned && a.at < healing);
      const p99 = (xs: readonly number[]) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))] ?? 0;
      console.log(
        `      ${mode}: the breaker opened after ${(opened - partitioned).toFixed(0)} ms (${beforeOpen.length} requests waited, slowest ${Math.max(...beforeOpen.map((a) => a.ms)).toFixed(0)} ms); while open: ${whileOpen.length} refused, p99 ${p99(whileOpen.map((a) => a.ms)).toFixed(1)} ms; /v1/status ${status.length} × 200; healed: first 200 after ${firstOk.toFixed(0)} ms (open time ${RESET_MS} ms)`,
      );
      const excerpt = exposition.split('\n').filter((l) => /^rampart_(circuit_breaker_\w+|pool_connections)\{/.test(l));
      console.log(`      /metrics while open:\n${excerpt.map((l) => `        ${l}`).join('\n')}`);
      assert.ok(whileOpen.length > 10, `requests while open: ${whileOpen.length}`);
      for (const a of whileOpen) {
        assert.equal(a.status, 503);
        assert.equal(a.error, 'DATABASE_UNAVAILABLE');
        assert.ok(Number(a.retryAfter) >= 1, `Retry-After ${a.retryAfter}`);
      }
      // None waits for the request deadline (15 s), nor past the breaker's call timeout and a margin.
      assert.ok(Math.max(...answers.map((a) => a.ms)) < TIMEOUT_MS + 2_000, `slowest ${Math.max(...answers.map((a) => a.ms))} ms`);
      assert.ok(status.length > 0 && status.every((a) => a.status === 200), 'routes without the database keep answering 200');
      assert.equal(ready.status, 503);
      assert.match(readyBody.error?.['db'] ?? '', /db_write: circuit breaker open/);
      assert.match(exposition, /rampart_circuit_breaker_state\{name="db_write"\} 1/);
      assert.match(
        exposition,
        new RegExp(`rampart_circuit_breaker_transitions_total\\{name="db_write",from="CLOSED",to="OPEN"\\} ${run + 1}\\n`),
      );
      assert.match(exposition, /rampart_pool_connections\{pool="db_write",state="waiting"\} \d+/);
      assert.ok(firstOk < RESET_MS + TIMEOUT_MS + 2_000, `first success ${firstOk} ms after healing`);
    });
});
