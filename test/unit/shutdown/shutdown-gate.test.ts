import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import request from 'supertest';
import * as rampart from '../../../src';
import { createShutdownGate, SHUTDOWN_GATE_DEFAULTS, type ShutdownGate } from '../../../src';

function appWith(gate: ShutdownGate) {
  const app = express();
  app.use(gate);
  app.get('/health/live', (_req, res) => res.json({ status: 'healthy' }));
  app.get('/slow', (_req, res) => {
    setTimeout(() => res.json({ done: true }), 200);
  });
  app.get('/fast', (_req, res) => res.json({ ok: true }));
  return app;
}

describe('shutdown gate', () => {
  it('pins its defaults', () => {
    assert.deepEqual(SHUTDOWN_GATE_DEFAULTS, { exemptPaths: ['/health/live', '/health/ready', '/health/started'], retryAfterSeconds: 5 });
    assert.ok(!('shutdownGate' in rampart), 'exported as createShutdownGate only (the alias is gone)');
  });

  it('counts requests in flight, retires their sockets on drain, refuses new ones once closed', async () => {
    const gate = createShutdownGate();
    const server = appWith(gate).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      assert.equal(gate.state, 'SERVING');
      const agent = new Agent({ keepAlive: true });
      const normal = await new Promise<string | undefined>((resolve, reject) => {
        get(`${base}/fast`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.headers['connection']));
        }).on('error', reject);
      });
      agent.destroy();
      assert.equal(normal, 'keep-alive', 'a keep-alive client keeps its socket while serving');

      const inFlight = request(base)
        .get('/slow')
        .then((r) => r);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(gate.inFlight, 1);
      gate.drain();
      assert.equal(gate.state, 'DRAINING');
      const duringDrain = await request(base).get('/fast');
      assert.equal(duringDrain.status, 200);
      assert.equal(duringDrain.headers['connection'], 'close');

      gate.close();
      assert.equal(gate.state, 'CLOSED');
      const refused = await request(base).get('/fast');
      assert.equal(refused.status, 503);
      assert.deepEqual(refused.body, {
        error: 'SERVER_SHUTTING_DOWN',
        detail: 'The server is shutting down; retry on another instance',
        retry_after: 5,
      });
      assert.equal(refused.headers['retry-after'], '5');
      assert.equal(refused.headers['connection'], 'close');
      const live = await request(base).get('/health/live');
      assert.equal(live.status, 200, 'liveness passes a closed gate');
      assert.equal(live.headers['connection'], 'close');

      assert.equal(await gate.whenIdle(2000), true);
      const finished = await inFlight;
      assert.equal(finished.status, 200, 'the request in flight completed');
      assert.deepEqual(finished.body, { done: true });
      assert.equal(finished.headers['connection'], 'close', 'and its socket was retired');
      assert.equal(gate.inFlight, 0);
    } finally {
      server.close();
    }
  });

  it('whenIdle gives up after its timeout', async () => {
    const gate = createShutdownGate();
    const app = appWith(gate);
    const pending = request(app)
      .get('/slow')
      .then((r) => r.status);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(await gate.whenIdle(20), false);
    assert.equal(await pending, 200);
    assert.equal(await gate.whenIdle(20), true);
  });

  it('keeps each instance to itself', async () => {
    const a = createShutdownGate({ retryAfterSeconds: 7 });
    const b = createShutdownGate();
    a.close();
    assert.equal((await request(appWith(a)).get('/fast')).headers['retry-after'], '7');
    assert.equal((await request(appWith(b)).get('/fast')).status, 200);
    assert.equal(b.state, 'SERVING');
  });

  it('refuses a bad option when built', () => {
    assert.throws(() => createShutdownGate({ retryAfterSeconds: 0 }), /retryAfterSeconds must be a positive number/);
  });
});
