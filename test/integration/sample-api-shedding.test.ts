import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { createHealth, createLoadShedder, createMetrics, loadConfig, type LoadShedder } from '../../src';
import { createApp } from '../../src/app/app';
import { createDatabase, type Database } from '../../src/app/db/database';
import { migrate } from '../../src/app/db/migrations';
import { createLogger } from '../../src/app/logger';
import { waitUntil } from '../../scripts/wait';
import { createTestSchema, type TestSchema } from '../support/postgres';

describe('sample API load shedding', function () {
  this.timeout(30_000);
  let schema: TestSchema;
  let db: Database;
  let shedder: LoadShedder;
  let server: Server;
  let base: string;
  let metricsText: () => Promise<string>;

  before(async () => {
    schema = await createTestSchema('sample_shed');
    db = createDatabase({ writeUrl: schema.url, schema: schema.name, maxConnections: 2 });
    await migrate(db.write, db.schema);
    const config = loadConfig({ RATE_LIMIT_ENABLED: 'false', LOAD_SHED_MAX_IN_FLIGHT: '1' });
    const metrics = createMetrics({ processMetrics: false });
    metricsText = () => metrics.registry.metrics();
    shedder = createLoadShedder({
      maxInFlight: config.loadShed.maxInFlight,
      maxEventLoopDelayMs: config.loadShed.maxEventLoopDelayMs,
      onShed: (reason) => metrics.lifecycle.loadShed.labels(reason).inc(),
    });
    const app = createApp({
      config,
      db,
      logger: createLogger('silent'),
      metrics,
      shedder,
      health: createHealth({ checks: [] }),
      version: 'test',
    });
    server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    shedder?.close();
    server?.closeAllConnections();
    server?.close();
    await db?.close();
    await schema?.drop();
  });

  it('answers 503 OVERLOADED past LOAD_SHED_MAX_IN_FLIGHT, keeps the probes and metrics, counts it', async () => {
    const slow = request(base)
      .get('/v1/slow?ms=700')
      .then((r) => r);
    await waitUntil('the slow request in flight', async () => shedder.state.inFlight >= 1, 5000, 10).catch(() => undefined);
    assert.equal(shedder.state.inFlight, 1);

    const shed = await request(base).get('/v1/status');
    assert.equal(shed.status, 503);
    assert.equal(shed.body.error, 'OVERLOADED');
    assert.equal(shed.headers['retry-after'], '1');
    assert.equal((await request(base).get('/health/live')).status, 200);
    assert.equal((await request(base).get('/health/ready')).status, 200);
    assert.equal((await request(base).get('/metrics')).status, 200);
    assert.match(await metricsText(), /^rampart_load_shed_total\{reason="in_flight"\} 1$/m);

    assert.equal((await slow).status, 200);
    assert.equal((await request(base).get('/v1/status')).status, 200, 'admitted again once the slow request is done');
  });
});
