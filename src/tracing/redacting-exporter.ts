import type { ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { redactAttributes, redactSpan } from './redaction';

/**
 * The one place redaction happens, which nothing can bypass: every span reaches the real
 * exporter only as a redacted copy (the SDK's own span is not touched, so processor order does
 * not matter). Resources are redacted once each.
 */
export class RedactingSpanExporter implements SpanExporter {
  private readonly resources = new WeakMap<Resource, Resource>();

  constructor(private readonly inner: SpanExporter) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    const copies = spans.map((span) => {
      const copy = redactSpan(span);
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
      redacted = resourceFromAttributes(redactAttributes(resource.attributes), resource.schemaUrl === undefined ? {} : { schemaUrl: resource.schemaUrl });
      this.resources.set(resource, redacted);
    }
    return redacted;
  }
}
