// A finished span with every field a ReadableSpan has, for the redaction tests.
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';

/** A server span named `name` (default the one the sample API's notes route gets), with `overrides`. */
export function finishedSpan(overrides: Partial<ReadableSpan>, name = 'GET /v1/notes/:id'): ReadableSpan {
  return {
    name,
    kind: SpanKind.SERVER,
    spanContext: () => ({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 }),
    startTime: [1, 0],
    endTime: [1, 5],
    status: { code: SpanStatusCode.UNSET },
    attributes: {},
    links: [],
    events: [],
    duration: [0, 5],
    ended: true,
    resource: resourceFromAttributes({ 'service.name': 'svc' }),
    instrumentationScope: { name: 'test' },
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
    ...overrides,
  };
}
