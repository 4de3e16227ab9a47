// The shutdown gate and requests whose body is still arriving when it closes: answered 503 at
// once (their route never starts), while requests whose body has arrived are served in full;
// and pipelined requests queued behind another never hold the drain.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import express, { type Request } from 'express';
import { errorHandler, createShutdownGate, type ShutdownGate } from '../../../src';
import { answerBodyError, readJsonBody } from '../../../src/app/json-body';
import { waitUntil } from '../../../scripts/wait';
import { parseResponses, type RawResponse } from '../../support/raw-http';

const tick = () => new Promise((r) => setImmediate(r));

interface Harness {
  readonly gate: ShutdownGate;
  readonly port: number;
  /** Requests as they passed the gate, in order. */
  readonly arrived: Request[];
  /** Paths whose route ran. */
  readonly ran: string[];
  /** Errors that became a 500. */
  readonly internal: unknown[];
  /** Lets the requests held on `/held` go on (to the body read). */
  release(): void;
  close(): Promise<void>;
}

/**
 * An app as the sample API orders it: gate, a pre-body step that waits (as authentication
 * does) on `/held`, the body read (the sample API's, or plain `express.json()`), routes, our
 * error handler.
 */
async function start(body: 'readJsonBody' | 'express.json', exemptPaths?: string[]): Promise<Harness> {
  const gate = createShutdownGate(exemptPaths === undefined ? {} : { exemptPaths });
  const arrived: Request[] = [];
  const ran: string[] = [];
  const internal: unknown[] = [];
  let release = () => undefined as void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const app = express();
  app.use(gate);
  app.use((req, _res, next) => {
    arrived.push(req);
    next();
  });
  app.use('/held', async (_req, _res, next) => {
    await held;
    next();
  });
  if (body === 'readJsonBody') {
    app.use(readJsonBody(64 * 1024));
    app.use(answerBodyError());
  } else {
    app.use(express.json());
  }
  app.post(['/upload', '/held', '/exempt'], (req, res) => {
    ran.push(req.path);
    res.json({ got: req.body as unknown });
  });
  app.get('/slow', (req, res) => {
    ran.push(req.path);
    // Long enough that the requests queued behind it are still queued when a busy machine
    // gets round to counting them.
    setTimeout(() => res.json({ slow: true }), 1500);
  });
  app.use(errorHandler({ onInternalError: (err) => internal.push(err) }));
  const server: Server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    gate,
    port: (server.address() as AddressInfo).port,
    arrived,
    ran,
    internal,
    release: () => release(),
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A raw client connection that records what the server sends and whether it closed. */
async function client(port: number): Promise<{ socket: Socket; responses(): RawResponse[]; closed: Promise<void> }> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((resolve) => {
    socket.once('end', resolve);
    socket.once('close', resolve);
  });
  return { socket, responses: () => parseResponses(Buffer.concat(chunks).toString('latin1')), closed };
}

const postHead = (path: string, length: number) =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
const BODY = '{"username":"somebody"}';

function assertShuttingDown(r: RawResponse | undefined): void {
  assert.equal(r?.status, 503, JSON.stringify(r));
  assert.equal(r.headers['connection'], 'close');
  assert.equal(r.headers['retry-after'], '5');
  assert.deepEqual(JSON.parse(r.body), {
    error: 'SERVER_SHUTTING_DOWN',
    detail: 'The server is shutting down; retry on another instance',
    retry_after: 5,
  });
}

/** Waits until the request has ended on the server's side (and a tick more for anything it set off). */
async function settled(req: Request | undefined): Promise<void> {
  assert.ok(req !== undefined);
  if (!req.destroyed) await once(req, 'close');
  await tick();
  await tick();
}

describe('shutdown gate: requests whose body is still arriving', () => {
  for (const body of ['readJsonBody', 'express.json'] as const) {
    it(`(${body}) answers 503 at once; the route never runs, though the rest of the body arrives as the gate closes`, async () => {
      const h = await start(body);
      try {
        const c = await client(h.port);
        c.socket.write(`${postHead('/upload', BODY.length)}${BODY.slice(0, 5)}`);
        await waitUntil('the request in flight', async () => h.gate.inFlight === 1, 5000, 5);
        // The rest is on its way (in the server's socket buffer) when the gate closes: the
        // server reads it only after this turn, so the gate sees the body incomplete.
        c.socket.write(BODY.slice(5));
        assert.equal(h.gate.close(), 1, 'one request refused');
        await c.closed;
        const responses = c.responses();
        assert.equal(responses.length, 1);
        assertShuttingDown(responses[0]);
        assert.equal(await h.gate.whenIdle(2000), true);
        await settled(h.arrived[0]);
        assert.deepEqual(h.ran, [], 'the route never ran');
        assert.deepEqual(h.internal, [], 'no 500');
        assert.equal(h.gate.inFlight, 0);
      } finally {
        await h.close();
      }
    });
  }

  it('serves in full a request whose body has all arrived, though its route has not started when the gate closes', async () => {
    const h = await start('readJsonBody');
    try {
      const c = await client(h.port);
      c.socket.write(`${postHead('/held', BODY.length)}${BODY}`);
      await waitUntil('the body received', async () => h.arrived[0]?.complete === true, 5000, 5);
      assert.equal(h.gate.close(), 0, 'nothing refused');
      h.release();
      await c.closed;
      const responses = c.responses();
      assert.equal(responses.length, 1);
      assert.equal(responses[0]?.status, 200);
      assert.equal(responses[0]?.headers['connection'], 'close');
      assert.deepEqual(JSON.parse(responses[0]?.body ?? ''), { got: { username: 'somebody' } });
      assert.deepEqual(h.ran, ['/held']);
      assert.equal(await h.gate.whenIdle(2000), true);
    } finally {
      await h.close();
    }
  });

  it('a request refused while held before its body read (as authentication holds it) goes no further when let go', async () => {
    const h = await start('readJsonBody');
    try {
      const c = await client(h.port);
      c.socket.write(`${postHead('/held', BODY.length)}${BODY.slice(0, 5)}`);
      await waitUntil('the request in flight', async () => h.gate.inFlight === 1, 5000, 5);
      assert.equal(h.gate.close(), 1);
      await c.closed;
      assertShuttingDown(c.responses()[0]);
      h.release();
      await settled(h.arrived[0]);
      assert.deepEqual(h.ran, []);
      assert.deepEqual(h.internal, []);
      assert.equal(await h.gate.whenIdle(2000), true);
    } finally {
      await h.close();
    }
  });

  it('never refuses an exempt path', async () => {
    const h = await start('readJsonBody', ['/exempt']);
    try {
      const c = await client(h.port);
      c.socket.write(`${postHead('/exempt', BODY.length)}${BODY.slice(0, 5)}`);
      await waitUntil('the request in flight', async () => h.gate.inFlight === 1, 5000, 5);
      assert.equal(h.gate.close(), 0);
      c.socket.write(BODY.slice(5));
      await waitUntil('the answer', async () => c.responses()[0]?.complete === true, 5000, 5);
      assert.equal(c.responses()[0]?.status, 200);
      assert.equal(await h.gate.whenIdle(2000), true);
    } finally {
      await h.close();
    }
  });

  it('pipelined requests queued behind one in flight do not hold the drain', async () => {
    const h = await start('readJsonBody');
    try {
      // Behind a slow request: a complete one, and an upload still arriving.
      const complete = await client(h.port);
      complete.socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
      const uploading = await client(h.port);
      uploading.socket.write(`GET /slow HTTP/1.1\r\nHost: x\r\n\r\n${postHead('/upload', BODY.length)}${BODY.slice(0, 5)}`);
      await waitUntil(`4 requests in flight (is ${h.gate.inFlight})`, async () => h.gate.inFlight === 4, 5000, 5);
      h.gate.drain();
      assert.equal(h.gate.close(), 1, 'the upload refused');
      // The first answer on each connection says Connection: close, so the one queued behind it
      // is never written: the connection closes, and the drain does not wait for it.
      assert.equal(await h.gate.whenIdle(5000), true, `still in flight: ${h.gate.inFlight}`);
      await Promise.all([complete.closed, uploading.closed]);
      for (const c of [complete, uploading]) {
        const responses = c.responses();
        assert.equal(responses.length, 1, JSON.stringify(responses));
        assert.equal(responses[0]?.status, 200);
        assert.equal(responses[0]?.headers['connection'], 'close');
      }
      await settled(h.arrived[3]);
      assert.deepEqual(h.internal, []);
    } finally {
      await h.close();
    }
  });

  it('counts out pipelined requests whose client hangs up while they are queued', async () => {
    const h = await start('readJsonBody');
    try {
      const c = await client(h.port);
      c.socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(5));
      await waitUntil(`5 requests in flight (is ${h.gate.inFlight})`, async () => h.gate.inFlight === 5, 5000, 5);
      c.socket.destroy();
      await waitUntil(`none in flight (is ${h.gate.inFlight})`, async () => h.gate.inFlight === 0, 5000, 5);
      assert.equal(h.gate.state, 'SERVING');
    } finally {
      await h.close();
    }
  });
});
