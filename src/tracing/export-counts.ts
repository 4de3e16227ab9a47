import { TraceFlags, type Context } from '@opentelemetry/api';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { SpanCounts } from './active-tracing';

/** `ExportResultCode.SUCCESS` (0): the numeric value, so nothing is loaded for it. */
const SUCCESS = 0;

/**
 * The export queue's bound and the accounting of every sampled span: the spans go to `inner`
 * (a batch processor over the exporter {@link exporter} wraps) while fewer than `maxQueueSize`
 * wait for their export, and are counted dropped past it, never queued (the batch processor's
 * own bound is the same, so it never drops one silently). The exporter counts each batch it
 * hands on as exported or failed by the collector's answer. Nothing here waits: a span's end
 * costs a comparison and a counter, collector up or down.
 */
export function createSpanAccounting(exporterName: string, maxQueueSize: number) {
  const counts = { exporter: exporterName, exported: 0, failed: 0, dropped: 0 };
  /** Sampled spans handed to the processor and not yet to the exporter. */
  let waiting = 0;
  return {
    counts: counts as SpanCounts,
    /** `inner` with the queue bound and the drop count in front of it. */
    processor(inner: SpanProcessor): SpanProcessor {
      return {
        onStart: (span: Span, context: Context) => inner.onStart(span, context),
        onEnd(span: ReadableSpan) {
          // Unsampled spans never reach the queue (the batch processor ignores them too).
          if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
          if (waiting >= maxQueueSize) {
            counts.dropped++;
            return;
          }
          waiting++;
          inner.onEnd(span);
        },
        forceFlush: () => inner.forceFlush(),
        shutdown: () => inner.shutdown(),
      };
    },
    /** `inner` counting each batch by the collector's answer. */
    exporter(inner: SpanExporter): SpanExporter {
      return {
        export(spans: ReadableSpan[], done: (result: ExportResult) => void) {
          waiting = Math.max(0, waiting - spans.length);
          inner.export(spans, (result) => {
            if (result.code === SUCCESS) counts.exported += spans.length;
            else counts.failed += spans.length;
            done(result);
          });
        },
        shutdown: () => inner.shutdown(),
        forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
      };
    },
  };
}
