import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import express from 'express';
import request from 'supertest';
import { errorHandler } from '../../src/index';
import { traceIncomingRequests } from '../../src/tracing/server-spans';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('traceIncomingRequests: one server span per request', function () {
  this.timeout(10_000);
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracer = provider.getTracer('test');
  const unsampled = new BasicTracerProvider({ sampler: new ParentBasedSampler({ root: new AlwaysOffSampler() }) }).getTracer('off');
  let untrace: () => void = () => undefined;
  let server: Server;
  let base: string;
  // What the handlers saw as the active span.
  let seen: { traceId: string; spanId: string } | undefined;

  const app = express();
  const api = express.Router();
  api.get('/things/:id', (_req, res) => {
    tracer.startSpan('child').end();
    res.json({ ok: true });
  });
  api.post('/echo', (req, res) => {
    // Plain stream events (body-parser binds its own callback; not every reader does).
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      tracer.startSpan('after-body').end();
      res.type('json').send(body);
    });
  });
  app.use('/api', api);
  app.get('/health/ready', (_req, res) => {
    seen = trace.getActiveSpan()?.spanContext();
    res.json({ ok: true });
  });
  app.get('/context', (_req, res) => {
    seen = trace.getActiveSpan()?.spanContext();
    res.json({ ok: true });
  });
  app.get('/boom', () => {
    throw new Error('kaboom');
  });
  app.use(errorHandler());

  const install = (t = tracer) => {
    untrace();
    untrace = traceIncomingRequests({ tracer: t, ignorePaths: ['/health/'] });
  };
  const finished = async (n: number): Promise<ReadableSpan[]> => {
    for (let i = 0; i < 100 && exporter.getFinishedSpans().length < n; i++) await sleep(10);
    return exporter.getFinishedSpans();
  };
  const serverSpan = (spans: ReadableSpan[]) => {
    const found = spans.filter((s) => s.kind === SpanKind.SERVER);
    assert.equal(found.length, 1, `server spans: ${spans.map((s) => s.name).join(', ')}`);
    return found[0] as ReadableSpan;
  };

  before(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    server = createServer(app);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  beforeEach(() => {
    install();
    exporter.reset();
    seen = undefined;
  });
  after(async () => {
    untrace();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    context.disable();
    propagation.disable();
  });

  it('names the span after the matched route, with the attributes the semantic conventions require, and parents what the handler starts', async () => {
    await request(base).get('/api/things/42?colour=red').set('User-Agent', 'probe/1').expect(200);
    const spans = await finished(2);
    const span = serverSpan(spans);
    assert.equal(span.name, 'GET /api/things/:id');
    assert.deepEqual(
      { ...span.attributes },
      {
        'http.request.method': 'GET',
        'url.scheme': 'http',
        'url.path': '/api/things/42',
        'url.query': 'colour=red',
        'http.route': '/api/things/:id',
        'http.response.status_code': 200,
      },
      'the required attributes only: nothing that identifies the client',
    );
    assert.equal(span.status.code, SpanStatusCode.UNSET);
    const child = spans.find((s) => s.name === 'child');
    assert.equal(child?.parentSpanContext?.spanId, span.spanContext().spanId);
    assert.equal(child?.spanContext().traceId, span.spanContext().traceId);
  });

  it('keeps the request context for what runs after a body that arrives later, on another read of the socket', async () => {
    const port = Number(new URL(base).port);
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const body = '{"a":1}';
    socket.write(`POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    await sleep(100);
    socket.write(body);
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    socket.destroy();
    assert.match(chunk.toString(), /^HTTP\/1\.1 200/);
    const spans = await finished(2);
    const span = serverSpan(spans);
    assert.equal(span.name, 'POST /api/echo');
    const after = spans.find((s) => s.name === 'after-body');
    assert.equal(
      after?.parentSpanContext?.spanId,
      span.spanContext().spanId,
      'the span started after the body has the request span as parent',
    );
  });

  it('continues the caller trace from traceparent', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    await request(base).get('/context').set('traceparent', `00-${traceId}-${parent}-01`).expect(200);
    const span = serverSpan(await finished(1));
    assert.equal(span.spanContext().traceId, traceId);
    assert.equal(span.parentSpanContext?.spanId, parent);
    assert.equal(seen?.spanId, span.spanContext().spanId, 'the server span is the active one in the handler');
  });

  it('makes no span, and no active span, for an ignored path', async () => {
    await request(base).get('/health/ready').expect(200);
    await sleep(50);
    assert.equal(exporter.getFinishedSpans().length, 0);
    assert.equal(seen, undefined);
  });

  it('marks a 5xx as an error, with the exception recorded by errorHandler', async () => {
    await request(base).get('/boom').expect(500);
    const span = serverSpan(await finished(1));
    assert.equal(span.name, 'GET /boom');
    assert.equal(span.status.code, SpanStatusCode.ERROR);
    assert.equal(span.attributes['error.type'], '500');
    assert.equal(span.attributes['http.response.status_code'], 500);
    const event = span.events.find((e) => e.name === 'exception');
    assert.equal(event?.attributes?.['exception.message'], 'kaboom');
  });

  it('names an unmatched request by its method alone, and an unknown method _OTHER', async () => {
    await request(base).get('/nowhere').expect(404);
    const span = serverSpan(await finished(1));
    assert.equal(span.name, 'GET');
    assert.equal(span.attributes['http.route'], undefined);
    assert.equal(span.attributes['http.response.status_code'], 404);
    exporter.reset();
    await request(base).propfind('/context').expect(404);
    const other = serverSpan(await finished(1));
    assert.equal(other.attributes['http.request.method'], '_OTHER');
    assert.equal(other.attributes['http.request.method_original'], 'PROPFIND');
  });

  it('exports nothing for an unsampled request, while its context still carries the trace on', async () => {
    install(unsampled);
    await request(base).get('/context').expect(200);
    await sleep(50);
    assert.equal(exporter.getFinishedSpans().length, 0);
    assert.match(seen?.traceId ?? '', /^[0-9a-f]{32}$/);
    assert.notEqual(seen?.traceId, '0'.repeat(32));
  });

  it('makes no span once removed', async () => {
    untrace();
    untrace = () => undefined;
    await request(base).get('/context').expect(200);
    await sleep(50);
    assert.equal(exporter.getFinishedSpans().length, 0);
    assert.equal(seen, undefined);
  });
});
