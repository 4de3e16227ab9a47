import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import express from 'express';
import { waitUntil } from '../../../scripts/wait';
import request from 'supertest';
import * as rampart from '../../../src';
import { createLoadShedder, LOAD_SHEDDER_DEFAULTS, type LoadShedder, type ShedReason } from '../../../src';

/**
 * Keeps the event loop busy in slices of `sliceMs` for `forMs`: a sustained delay, as under
 * CPU overload (one single pause is one sample among many and does not move the p95).
 */
async function overload(sliceMs: number, forMs: number): Promise<void> {
  const end = Date.now() + forMs;
  while (Date.now() < end) {
    busyWait(sliceMs);
    await new Promise((r) => setTimeout(r, 0));
  }
}

function busyWait(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // block the event loop on purpose
  }
}

function appWith(shedder: LoadShedder, hold: Promise<void>) {
  const app = express();
  app.use(shedder);
  app.get('/health/live', (_req, res) => res.json({ status: 'alive' }));
  app.get('/work', (_req, res) => res.json({ ok: true }));
  app.get('/hold', async (_req, res) => {
    await hold;
    res.json({ held: true });
  });
  return app;
}

describe('load shedder', () => {
  const shedders: LoadShedder[] = [];
  afterEach(() => {
    for (const s of shedders.splice(0)) s.close();
  });
  function make(options: Parameters<typeof createLoadShedder>[0]): LoadShedder {
    const s = createLoadShedder(options);
    shedders.push(s);
    return s;
  }

  it('pins its defaults', () => {
    assert.deepEqual(LOAD_SHEDDER_DEFAULTS, {
      maxEventLoopDelayMs: 200,
      maxInFlight: 1000,
      sampleIntervalMs: 500,
      retryAfterSeconds: 1,
      exemptPaths: ['/health/live', '/health/ready', '/health/started'],
    });
    assert.ok(!('loadShedder' in rampart), 'exported as createLoadShedder only (the alias is gone)');
  });

  it('refuses bad options, naming them', () => {
    assert.throws(() => createLoadShedder({ maxInFlight: -1 }), /loadShedder: maxInFlight must be a non-negative integer, got -1/);
    assert.throws(() => createLoadShedder({ maxInFlight: 1.5 }), /maxInFlight must be a non-negative integer, got 1.5/);
    assert.throws(() => createLoadShedder({ maxEventLoopDelayMs: Number.NaN }), /maxEventLoopDelayMs/);
    assert.throws(() => createLoadShedder({ sampleIntervalMs: 0 }), /sampleIntervalMs must be a positive number, got 0/);
    assert.throws(() => createLoadShedder({ retryAfterSeconds: 0 }), /retryAfterSeconds/);
  });

  it('sheds past the in-flight limit with 503 OVERLOADED and Retry-After, never /health/live', async () => {
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const reasons: ShedReason[] = [];
    const shedder = make({ maxInFlight: 2, maxEventLoopDelayMs: 0, onShed: (reason) => reasons.push(reason) });
    const server = appWith(shedder, hold).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const base = `http://127.0.0.1:${port}`;
    try {
      const held = [
        request(base)
          .get('/hold')
          .then((r) => r),
        request(base)
          .get('/hold')
          .then((r) => r),
      ];
      await waitUntil('two requests in flight', async () => shedder.state.inFlight === 2, 2000, 10);

      const shed = await request(base).get('/work');
      assert.equal(shed.status, 503);
      assert.equal(shed.headers['retry-after'], '1');
      assert.match(shed.headers['content-type'] ?? '', /^application\/json/);
      assert.deepEqual(shed.body, {
        error: 'OVERLOADED',
        detail: 'The server is at its limit of concurrent requests; retry shortly',
        retry_after: 1,
      });
      assert.deepEqual(reasons, ['in_flight']);

      const live = await request(base).get('/health/live');
      assert.equal(live.status, 200, '/health/live is never shed');
      const liveWithQuery = await request(base).get('/health/live?x=1');
      assert.equal(liveWithQuery.status, 200, 'a query string does not make /health/live sheddable');

      release();
      const done = await Promise.all(held);
      assert.deepEqual(
        done.map((r) => r.status),
        [200, 200],
      );
      await waitUntil('in-flight back to 0', async () => shedder.state.inFlight === 0, 2000, 10);
      assert.equal((await request(base).get('/work')).status, 200);
    } finally {
      release();
      server.closeAllConnections();
      server.close();
    }
  });

  it('frees the places of pipelined requests whose client hangs up before their turn', async () => {
    const never = new Promise<void>(() => undefined);
    const shedder = make({ maxInFlight: 100, maxEventLoopDelayMs: 0 });
    const server = appWith(shedder, never).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      const sockets = await Promise.all(
        [1, 2, 3].map(async () => {
          const s = connect(port, '127.0.0.1');
          s.on('error', () => undefined);
          await once(s, 'connect');
          s.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\nGET /work HTTP/1.1\r\nHost: x\r\n\r\n');
          return s;
        }),
      );
      await waitUntil('the held requests in flight', async () => shedder.state.inFlight >= 3, 2000, 10);
      for (const s of sockets) s.destroy();
      await waitUntil(`in-flight back to 0 (is ${shedder.state.inFlight})`, async () => shedder.state.inFlight === 0, 2000, 10);

      // Twenty pipelined on one connection: one listener on it, not one per request.
      const warnings: Error[] = [];
      const onWarning = (w: Error) => warnings.push(w);
      process.on('warning', onWarning);
      try {
        const many = connect(port, '127.0.0.1');
        many.on('error', () => undefined);
        await once(many, 'connect');
        many.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(20));
        await waitUntil(
          `20 pipelined requests in flight (is ${shedder.state.inFlight})`,
          async () => shedder.state.inFlight === 20,
          2000,
          10,
        );
        many.destroy();
        await waitUntil(`in-flight back to 0 (is ${shedder.state.inFlight})`, async () => shedder.state.inFlight === 0, 2000, 10);
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(
          warnings.map((w) => w.name),
          [],
          'a listener per pipelined request',
        );
      } finally {
        process.off('warning', onWarning);
      }
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('frees the place of a request whose client disconnects', async () => {
    const never = new Promise<void>(() => undefined);
    const shedder = make({ maxInFlight: 1, maxEventLoopDelayMs: 0 });
    const server = appWith(shedder, never).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/hold' });
      req.on('error', () => undefined);
      req.end();
      await waitUntil('one request in flight', async () => shedder.state.inFlight === 1, 2000, 10);
      assert.equal((await request(server).get('/work')).status, 503);
      req.destroy();
      await waitUntil('the aborted request counted out', async () => shedder.state.inFlight === 0, 2000, 10);
      assert.equal((await request(server).get('/work')).status, 200);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('sheds on event-loop delay, spares /health/live, and admits again once the loop is quiet', async () => {
    const reasons: ShedReason[] = [];
    const shedder = make({
      maxEventLoopDelayMs: 50,
      sampleIntervalMs: 1000,
      maxInFlight: 0,
      onShed: (reason) => reasons.push(reason),
    });
    const app = appWith(shedder, Promise.resolve());
    assert.equal(shedder.state.admitRatio, 1);
    await overload(150, 1300);
    await waitUntil('the sampler to see the delay', async () => shedder.state.admitRatio < 1, 3000, 10);
    assert.ok(shedder.state.eventLoopDelayMs >= 100, `delay ${shedder.state.eventLoopDelayMs} ms`);
    assert.equal(shedder.state.admitRatio, 0, 'at twice the limit nothing is admitted');

    const shed = await request(app).get('/work');
    assert.equal(shed.status, 503);
    assert.equal(shed.body.error, 'OVERLOADED');
    assert.equal(shed.body.detail, 'The server is overloaded; retry shortly');
    assert.equal(shed.headers['retry-after'], '1');
    assert.equal((await request(app).get('/health/live')).status, 200);
    assert.equal((await request(app).get('/health/ready')).status, 404, 'exempt from shedding, then the app answers');
    assert.deepEqual(reasons, ['event_loop_delay']);

    await waitUntil('a quiet window', async () => shedder.state.admitRatio === 1, 3000, 10);
    assert.equal((await request(app).get('/work')).status, 200);
  });

  it('within one event-loop turn, sheds what arrives after maxEventLoopDelayMs of work; the next turn starts afresh', async () => {
    const reasons: ShedReason[] = [];
    // A threshold far above the 10 ms step below, so a busy machine pausing this process between
    // two lines cannot push the second request past it.
    const shedder = make({ maxEventLoopDelayMs: 300, maxInFlight: 0, onShed: (reason) => reasons.push(reason) });
    // Requests read from the sockets in one poll are handled back to back, as here.
    const answers: number[] = [];
    const fake = () => {
      const headers: Record<string, string> = {};
      const res = {
        statusCode: 200,
        setHeader: (k: string, v: string) => (headers[k] = v),
        end: () => answers.push(res.statusCode),
        once: () => res,
      };
      return res;
    };
    // One connection for the fake requests (the shedder watches it for hang-ups).
    const socket = new EventEmitter();
    const run = () => {
      let admitted = false;
      const res = fake();
      shedder({ path: '/work', socket } as unknown as Parameters<LoadShedder>[0], res as unknown as Parameters<LoadShedder>[1], () => {
        admitted = true;
      });
      return admitted;
    };
    assert.equal(run(), true, 'the first request of a turn is always admitted');
    busyWait(10);
    assert.equal(run(), true, '10 ms into the turn');
    busyWait(300);
    assert.equal(run(), false, '310 ms into the turn: shed');
    assert.deepEqual(answers, [503]);
    let live = false;
    shedder({ path: '/health/live' } as Parameters<LoadShedder>[0], fake() as unknown as Parameters<LoadShedder>[1], () => {
      live = true;
    });
    assert.equal(live, true, '/health/live passes even late in a long turn');
    await new Promise((r) => setImmediate(r));
    assert.equal(run(), true, 'a new turn');
    assert.deepEqual(reasons, ['event_loop_delay']);
  });

  it('does not shed for one long pause among quick turns (p95, not max), at the default window', async () => {
    const shedder = make({ maxEventLoopDelayMs: 50, maxInFlight: 0 });
    await new Promise((r) => setTimeout(r, 50));
    busyWait(300);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(shedder.state.admitRatio, 1, `delay ${shedder.state.eventLoopDelayMs} ms`);
  });

  it('admits a fraction between the limit and twice it', async () => {
    let roll = 0.99;
    const shedder = make({ maxEventLoopDelayMs: 200, sampleIntervalMs: 1000, maxInFlight: 0, random: () => roll });
    const app = appWith(shedder, Promise.resolve());
    await overload(300, 1300);
    await waitUntil('the sampler to see the delay', async () => shedder.state.eventLoopDelayMs > 0, 3000, 10);
    const { admitRatio, eventLoopDelayMs } = shedder.state;
    assert.ok(admitRatio > 0 && admitRatio < 1, `admit ratio ${admitRatio} at ${eventLoopDelayMs} ms`);
    assert.ok(Math.abs(admitRatio - (1 - (eventLoopDelayMs - 200) / 200)) < 1e-9);
    assert.equal((await request(app).get('/work')).status, 503, 'a roll above the ratio is shed');
    roll = 0;
    assert.equal((await request(app).get('/work')).status, 200, 'a roll below it is admitted');
  });

  it('close() stops the delay sampler', async () => {
    const shedder = make({ maxEventLoopDelayMs: 10, sampleIntervalMs: 50, maxInFlight: 0 });
    // Overloaded until the sampler sees it (the ratio goes back to 1 soon after the load stops,
    // so it is read between slices of the load, not after it).
    const end = Date.now() + 3000;
    while (shedder.state.admitRatio === 1 && Date.now() < end) await overload(40, 40);
    assert.ok(shedder.state.admitRatio < 1, 'the sampler saw the delay');
    shedder.close();
    assert.equal(shedder.state.admitRatio, 1);
    await overload(40, 200);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(shedder.state.admitRatio, 1, 'no sampling after close');
  });
});
