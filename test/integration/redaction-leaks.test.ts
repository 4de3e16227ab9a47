// The redaction properties through a real server: the sample API (its request log, its 404 and
// error handlers) behind rampart's server spans, real HTTP requests carrying generated canaries
// in the URL (absolute form and userinfo included) and in every credential header, trace state
// and baggage; the spans collected through the real redacting exporter, the log lines from
// pino's output. A failure prints fast-check's seed and path (replay: FC_SEED, FC_PATH).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, createServer, request as httpRequest, type OutgoingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { context, propagation, trace, type Context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
  type Span,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import fc from 'fast-check';
import { createHealth, loadConfig } from '../../src';
import { createApp } from '../../src/app/app';
import { createDatabase, type Database } from '../../src/app/db/database';
import { freePort } from '../../scripts/ports';
import { createLogger } from '../../src/app/logger';
import { RedactingSpanExporter } from '../../src/tracing';
import { traceIncomingRequests } from '../../src/tracing/server-spans';
import { credentialHeaders, leaked, rmpToken, runs, spanText, urlWithCanaries, type Canary } from '../support/canaries';
import { TEST_DEADLINE_ENV } from '../support/deadline';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The request's log line: pino-http's, on a response (`errored` when it carries an error). */
const REQUEST_LINE = /"msg":"request (completed|errored)"/;
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/**
 * What a common setup adds (contrib's BaggageSpanProcessor): every baggage entry of the parent
 * context copied onto the span as an attribute. Records what the parent context carried.
 */
class BaggageToAttributes implements SpanProcessor {
  readonly parents: string[] = [];
  onStart(span: Span, parent: Context): void {
    const baggage = propagation.getBaggage(parent);
    for (const [key, entry] of baggage?.getAllEntries() ?? []) span.setAttribute(`baggage.${key}`, entry.value);
    this.parents.push(
      JSON.stringify({ baggage: baggage?.getAllEntries() ?? [], traceState: trace.getSpanContext(parent)?.traceState?.serialize() }),
    );
  }
  onEnd(): void {}
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

describe('redaction through a real server: canaries in requests reach no exported span and no log line', function () {
  this.timeout(60_000);
  const redacted = new InMemorySpanExporter();
  const raw = new InMemorySpanExporter();
  const baggage = new BaggageToAttributes();
  const provider = new BasicTracerProvider({
    spanProcessors: [baggage, new SimpleSpanProcessor(new RedactingSpanExporter(redacted)), new SimpleSpanProcessor(raw)],
  });
  const trusting = new InMemorySpanExporter();
  const trustingBaggage = new BaggageToAttributes();
  const trustingProvider = new BasicTracerProvider({
    spanProcessors: [trustingBaggage, new SimpleSpanProcessor(new RedactingSpanExporter(trusting, { keepTraceState: true }))],
  });
  const lines: string[] = [];
  const agent = new Agent({ keepAlive: true });
  let untrace: () => void = () => undefined;
  let server: Server;
  let db: Database | undefined;
  let port: number;

  before(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(
      new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
    );
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    // A database nobody listens for: the generated URLs that reach a route reading it
    // (/v1/notes/... with a bearer token) are answered 503 DATABASE_UNAVAILABLE, logged with the
    // error as "request errored", which must leak nothing either.
    db = createDatabase({ writeUrl: `postgres://postgres@127.0.0.1:${await freePort()}/test`, connectTimeoutMs: 1000 });
    const app = createApp({
      config: loadConfig({ ...TEST_DEADLINE_ENV }),
      db,
      logger: createLogger('info', destination),
      health: createHealth({ checks: [] }),
      version: '0.0.0-test',
    });
    server = createServer(app);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  beforeEach(() => {
    untrace();
    untrace = traceIncomingRequests({ tracer: provider.getTracer('rampart'), ignorePaths: ['/health/'] });
  });
  after(async () => {
    await db?.close();
    untrace();
    agent.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    context.disable();
    propagation.disable();
  });

  function send(path: string, headers: OutgoingHttpHeaders): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET', headers, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
  }

  /** Sends one request and returns what it left: its spans (redacted and raw) and its log lines. */
  async function traced(path: string, headers: OutgoingHttpHeaders, exporter = redacted) {
    redacted.reset();
    raw.reset();
    trusting.reset();
    baggage.parents.length = 0;
    lines.length = 0;
    const status = await send(path, headers);
    // The span ends, and the line is written, when the response closes: shortly after the client
    // has it, later on a busy machine. Polled for 10 s at most: a request that leaves neither
    // fails the property below (with its seed), not the whole test by mocha's timeout.
    const until = Date.now() + 10_000;
    while ((exporter.getFinishedSpans().length === 0 || !lines.some((l) => REQUEST_LINE.test(l))) && Date.now() < until) {
      await sleep(2);
    }
    const spans = exporter.getFinishedSpans();
    assert.equal(spans.length, 1, `one server span for ${path}`);
    return { status, span: spans[0] as ReadableSpan, raw: raw.getFinishedSpans(), log: lines.join('') };
  }

  const noLeak = (what: string, text: string, canaries: readonly Canary[]) => {
    const found = leaked(text, canaries);
    assert.equal(found, undefined, `${found} in the ${what}: ${text}`);
  };

  it('any URL and credential headers, with trace state and baggage, on 200s and 404s (untrusted caller: only traceparent honoured)', async () => {
    await fc.assert(
      fc.asyncProperty(urlWithCanaries({ wire: true }), credentialHeaders, fc.boolean(), async (url, creds, status) => {
        // Half the requests to a route that answers, half (most URLs) to none.
        const path = status
          ? url.full.replace(/^(http:\/\/[^/]*)?\/[^?#]*/, (_m, authority: string | undefined) => `${authority ?? ''}/v1/status`)
          : url.full;
        const canaries = [...url.canaries, ...creds.canaries];
        const { span, raw: rawSpans, log } = await traced(path, { ...creds.headers, traceparent: TRACEPARENT });
        noLeak('exported span', spanText(span), canaries);
        noLeak('request log', log, canaries);
        // Positive controls: the span and the line are the request's.
        assert.equal(span.spanContext().traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'traceparent honoured');
        assert.equal(typeof span.attributes['url.path'], 'string');
        assert.match(log, REQUEST_LINE);
        assert.match(log, /"x-api-key":"\[REDACTED\]"/i);
        // Not honoured at all, whatever the exporter would have done: no trace state in the
        // span's context, no baggage in the request's.
        for (const s of rawSpans) assert.equal(s.spanContext().traceState, undefined, 'no caller trace state in the span context');
        for (const parent of baggage.parents) noLeak('request context', parent, canaries);
        assert.ok(!rawSpans.some((s) => Object.keys(s.attributes).some((k) => k.startsWith('baggage.'))), 'no baggage in the context');
      }),
      runs(150),
    );
  });

  it('with trustIncomingTraceState, a trusted peer passes trace state and baggage; credential-shaped entries are still not exported', async () => {
    await fc.assert(
      fc.asyncProperty(rmpToken, async (token) => {
        untrace();
        untrace = traceIncomingRequests({ tracer: trustingProvider.getTracer('rampart'), ignorePaths: [], trustIncomingTraceState: true });
        trustingBaggage.parents.length = 0;
        const headers = { traceparent: TRACEPARENT, tracestate: `rojo=00f067aa0ba902b7,leak=${token.text}`, baggage: 'tenant=t1' };
        const { span, log } = await traced('/v1/status', headers, trusting);
        assert.equal(
          span.spanContext().traceState?.serialize(),
          'rojo=00f067aa0ba902b7',
          'the trusted entry kept, the credential-shaped one dropped',
        );
        assert.match(trustingBaggage.parents.join(), /tenant/, 'the baggage reached the request context');
        noLeak('exported span', spanText(span), [token]);
        noLeak('request log', log, [token]);
      }),
      runs(20),
    );
  });
});
