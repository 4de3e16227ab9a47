import assert from 'node:assert/strict';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import express from 'express';
import request from 'supertest';
import { createMemoryStore, createRateLimiter } from '../../../src';

// The span events the README promises for a decision (src/limit/plan.ts): the policies, the
// outcome and, when refused (or, in shadow mode, when it would have been), which policy.
describe('limiter span events', () => {
  const exporter = new InMemorySpanExporter();
  before(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  });
  after(() => {
    trace.disable();
    context.disable();
  });

  it('limited, shadow_limited (with the policy that would have refused) and skipped are events on the request span', async () => {
    const limiter = createRateLimiter({
      store: createMemoryStore(),
      policies: {
        strict: { algorithm: 'token_bucket', rps: 1 / 3600, burst: 1 },
        trial: { algorithm: 'token_bucket', rps: 1 / 3600, burst: 1, mode: 'shadow' },
        inner: { algorithm: 'token_bucket', rps: 1 / 3600, burst: 1, allow: ['127.0.0.1', '::1', '::ffff:127.0.0.1'] },
      },
    });
    const app = express();
    const tracer = trace.getTracer('test');
    app.use((req, res, next) =>
      tracer.startActiveSpan(`${req.method} ${req.path}`, (span) => {
        res.on('finish', () => span.end());
        next();
      }),
    );
    app.get('/strict', limiter.limit('strict'), (_req, res) => res.json({ ok: true }));
    app.get('/trial', limiter.limit('trial'), (_req, res) => res.json({ ok: true }));
    app.get('/inner', limiter.limit('inner'), (_req, res) => res.json({ ok: true }));
    for (const path of ['/strict', '/strict', '/trial', '/trial', '/inner']) await request(app).get(path);
    await limiter.close();
    const events = exporter
      .getFinishedSpans()
      .map((s) => ({ span: s.name, events: s.events.filter((e) => e.name === 'rate_limit.decision').map((e) => e.attributes) }));
    const outcome = (span: string) =>
      events.filter((e) => e.span === span).map((e) => e.events.map((a) => [a?.['rate_limit.outcome'], a?.['rate_limit.denied_by']]));
    assert.deepEqual(outcome('GET /strict'), [[['allowed', undefined]], [['limited', 'strict']]]);
    assert.deepEqual(outcome('GET /trial'), [[['allowed', undefined]], [['shadow_limited', 'trial']]]);
    assert.deepEqual(outcome('GET /inner'), [[['skipped', undefined]]]);
    for (const e of events.flatMap((x) => x.events)) {
      assert.equal(e?.['rate_limit.store'], 'memory');
      assert.ok(!JSON.stringify(e).includes('rl:'), 'never a key');
    }
  });
});
