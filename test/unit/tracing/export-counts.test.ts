import assert from 'node:assert/strict';
import type { ExportResult } from '@opentelemetry/core';
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { createSpanAccounting } from '../../../src/tracing/export-counts';

/** An exporter whose collector answers `code` (0 success, 1 failure), or never answers (`undefined`). */
function collector(code: 0 | 1 | undefined): SpanExporter & { batches: number } {
  const e = {
    batches: 0,
    export(_spans: ReadableSpan[], done: (r: ExportResult) => void) {
      e.batches++;
      if (code !== undefined) done({ code });
    },
    shutdown: () => Promise.resolve(),
  };
  return e;
}

/** A tracer whose spans go through the accounting, a batch processor and `exporter`. */
function tracerWith(exporter: SpanExporter, maxQueueSize: number, sampled = true) {
  const accounting = createSpanAccounting('otlp', maxQueueSize);
  const bsp = new BatchSpanProcessor(accounting.exporter(exporter), {
    maxQueueSize,
    maxExportBatchSize: maxQueueSize,
    scheduledDelayMillis: 10,
  });
  const provider = new BasicTracerProvider({
    spanProcessors: [accounting.processor(bsp)],
    ...(sampled ? {} : { sampler: new AlwaysOffSampler() }),
  });
  return { tracer: provider.getTracer('t'), counts: accounting.counts, provider };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('span export accounting', () => {
  it('counts spans the collector accepted as exported, and those it refused as failed', async () => {
    for (const [code, field] of [
      [0, 'exported'],
      [1, 'failed'],
    ] as const) {
      const { tracer, counts, provider } = tracerWith(collector(code), 100);
      for (let i = 0; i < 7; i++) tracer.startSpan(`s${i}`).end();
      // A refused export makes the flush reject: the spans are lost, and counted.
      await provider.forceFlush().catch(() => undefined);
      assert.deepEqual({ ...counts }, { exporter: 'otlp', exported: 0, failed: 0, dropped: 0, [field]: 7 });
      await provider.shutdown();
    }
  });

  it('a collector that never answers: past the queue bound the spans are dropped and counted, not queued, and ending one never waits', async () => {
    const silent = collector(undefined);
    const { tracer, counts } = tracerWith(silent, 5);
    const t = performance.now();
    for (let i = 0; i < 40; i++) tracer.startSpan(`s${i}`).end();
    const ms = performance.now() - t;
    await sleep(50);
    // At most 5 handed to the exporter (which never answers) and 5 more queued behind them: the rest dropped.
    assert.equal(counts.exported + counts.failed, 0);
    assert.ok(counts.dropped >= 30 && counts.dropped <= 35, JSON.stringify(counts));
    assert.ok(silent.batches <= 1, 'one export in flight at a time');
    assert.ok(ms < 1_000, `ending 40 spans took ${ms} ms`);
  });

  it('unsampled spans are not counted', async () => {
    const { tracer, counts, provider } = tracerWith(collector(0), 100, false);
    for (let i = 0; i < 5; i++) tracer.startSpan(`s${i}`).end();
    await provider.forceFlush();
    assert.deepEqual({ ...counts }, { exporter: 'otlp', exported: 0, failed: 0, dropped: 0 });
  });
});
