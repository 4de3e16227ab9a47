// Redaction of whole spans: kept apart from ./redaction (attributes and strings, which need only
// @opentelemetry/api), so that the main entry's types never name the SDK's.
import type { Link } from '@opentelemetry/api';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';
import { REDACTED, redactAttributes, scrubString } from './redaction';

function redactEvent(event: TimedEvent): TimedEvent {
  const attributes = event.attributes === undefined ? undefined : redactAttributes(event.attributes);
  if (attributes !== undefined && event.name === 'exception') {
    // A thrown error's message can carry anything (user input, a password in a connection
    // string): it never leaves the process. The stack keeps only its frames.
    if ('exception.message' in attributes) attributes['exception.message'] = REDACTED;
    const stack = attributes['exception.stacktrace'];
    if (typeof stack === 'string') {
      attributes['exception.stacktrace'] = stack
        .split('\n')
        .filter((line) => /^\s+at /.test(line))
        .join('\n');
    }
  }
  return { ...event, name: scrubString(event.name), ...(attributes === undefined ? {} : { attributes }) };
}

function redactLink(link: Link): Link {
  return link.attributes === undefined ? link : { ...link, attributes: redactAttributes(link.attributes) };
}

/**
 * A redacted copy of a finished span: name, attributes, status message (dropped: error
 * messages carry user data), events (exception messages dropped, stacks reduced to frames),
 * links. The resource is redacted once per resource by the exporter.
 */
export function redactSpan(span: ReadableSpan): ReadableSpan {
  const status = span.status.message === undefined || span.status.message === '' ? span.status : { ...span.status, message: REDACTED };
  return {
    name: scrubString(span.name),
    kind: span.kind,
    spanContext: () => span.spanContext(),
    ...(span.parentSpanContext === undefined ? {} : { parentSpanContext: span.parentSpanContext }),
    startTime: span.startTime,
    endTime: span.endTime,
    status,
    attributes: redactAttributes(span.attributes),
    links: span.links.map(redactLink),
    events: span.events.map(redactEvent),
    duration: span.duration,
    ended: span.ended,
    resource: span.resource,
    instrumentationScope: span.instrumentationScope,
    droppedAttributesCount: span.droppedAttributesCount,
    droppedEventsCount: span.droppedEventsCount,
    droppedLinksCount: span.droppedLinksCount,
  };
}
