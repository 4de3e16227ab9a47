import type { ExportResult } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { redactSpan, type RedactSpanOptions } from './redact-span';
import { redactAttributes } from './redaction';
import { requireTracingPackages } from './tracing-packages';

/**
 * The one place redaction happens, which nothing can bypass: every span reaches the real
 * exporter only as a redacted copy (the SDK's own span is not touched, so processor order does
 * not matter). Resources are redacted once each.
 *
 * Span contexts are exported without their trace state unless `options.keepTraceState` (then
 * with the entries that hold no credential): a server span's trace state is its caller's.
 *
 * Needs `@opentelemetry/resources` (an optional peer dependency): the constructor throws
 * `MissingTracingPackagesError` when it is not installed.
 */
export class RedactingSpanExporter implements SpanExporter {
  private readonly resources = new WeakMap<Resource, Resource>();
  private readonly resourceFromAttributes: typeof import('@opentelemetry/resources').resourceFromAttributes;

  constructor(
    private readonly inner: SpanExporter,
    private readonly options: RedactSpanOptions = {},
  ) {
    this.resourceFromAttributes = requireTracingPackages(['@opentelemetry/resources'])['@opentelemetry/resources'].resourceFromAttributes;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    const copies = spans.map((span) => {
      const copy = redactSpan(span, this.options);
      return { ...copy, resource: this.resource(span.resource), spanContext: copy.spanContext } as ReadableSpan;
    });
    this.inner.export(copies, resultCallback);
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }

  private resource(resource: Resource): Resource {
    let redacted = this.resources.get(resource);
    if (redacted === undefined) {
      redacted = this.resourceFromAttributes(
        redactAttributes(resource.attributes),
        resource.schemaUrl === undefined ? {} : { schemaUrl: resource.schemaUrl },
      );
      this.resources.set(resource, redacted);
    }
    return redacted;
  }
}
