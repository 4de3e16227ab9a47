import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { createHealth, type HealthCheck } from '../../../src';

/** A check that fails while `state.up` is false. */
function switchable(name: string, extra: Partial<HealthCheck> = {}): { check: HealthCheck; state: { up: boolean } } {
  const state = { up: true };
  const run = async () => {
    if (!state.up) throw new Error(`${name} down`);
  };
  return { check: { name, run, ...extra }, state };
}

function readyApp(checks: readonly HealthCheck[], isShuttingDown?: () => boolean) {
  const app = express();
  app.get('/health/ready', createHealth({ checks, cacheMs: 0, ...(isShuttingDown === undefined ? {} : { isShuttingDown }) }).ready());
  return app;
}

describe('createHealth: critical and non-critical checks', () => {
  it('a failing non-critical check gives 200 "degraded" with its error; the others stay connected', async () => {
    const db = switchable('db');
    const replica = switchable('db_replica', { critical: false });
    const app = readyApp([db.check, replica.check]);
    assert.deepEqual((await request(app).get('/health/ready')).body, { status: 'healthy', db: 'connected', db_replica: 'connected' });
    replica.state.up = false;
    const degraded = await request(app).get('/health/ready');
    assert.equal(degraded.status, 200);
    assert.equal(degraded.headers['cache-control'], 'no-store');
    assert.deepEqual(degraded.body, {
      status: 'degraded',
      db: 'connected',
      db_replica: 'disconnected',
      error: { db_replica: 'db_replica down' },
    });
    replica.state.up = true;
    assert.deepEqual((await request(app).get('/health/ready')).body, { status: 'healthy', db: 'connected', db_replica: 'connected' });
  });

  it('a failing critical check gives 503 "unhealthy", by default and when said, whatever the non-critical ones do', async () => {
    for (const extra of [{}, { critical: true }]) {
      const db = switchable('db', extra);
      const replica = switchable('db_replica', { critical: false });
      const app = readyApp([db.check, replica.check]);
      db.state.up = false;
      const down = await request(app).get('/health/ready');
      assert.equal(down.status, 503, JSON.stringify(extra));
      assert.deepEqual(down.body, { status: 'unhealthy', db: 'disconnected', db_replica: 'connected', error: { db: 'db down' } });
      replica.state.up = false;
      const both = await request(app).get('/health/ready');
      assert.equal(both.status, 503);
      assert.deepEqual(both.body, {
        status: 'unhealthy',
        db: 'disconnected',
        db_replica: 'disconnected',
        error: { db: 'db down', db_replica: 'db_replica down' },
      });
    }
  });

  it('a hung non-critical check is degraded within its timeout, not 503', async () => {
    const hung: HealthCheck = { name: 'db_replica', run: () => new Promise<void>(() => undefined), timeoutMs: 100, critical: false };
    const app = readyApp([{ name: 'db', run: async () => undefined }, hung]);
    // The check never settles: only its timeout can answer the probe.
    const res = await request(app).get('/health/ready');
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'degraded');
    assert.equal(res.body.db_replica, 'disconnected');
    assert.match(res.body.error.db_replica, /timed out after 100 ms/);
  });

  it('only non-critical checks, all failing: still 200 degraded; shutdown is 503 regardless', async () => {
    const replica = switchable('db_replica', { critical: false });
    let shuttingDown = false;
    const app = readyApp([replica.check], () => shuttingDown);
    replica.state.up = false;
    assert.equal((await request(app).get('/health/ready')).status, 200);
    shuttingDown = true;
    const res = await request(app).get('/health/ready');
    assert.equal(res.status, 503);
    assert.deepEqual(res.body, { status: 'unhealthy', reason: 'shutting_down' });
  });
});
