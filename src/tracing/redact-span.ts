// Redaction of whole spans: kept apart from ./redaction (attributes and strings, which need only
// @opentelemetry/api), so that the main entry's types never name the SDK's.
import { createTraceState, type Link, type SpanContext, type TraceState } from '@opentelemetry/api';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';
import { looksLikeCredential, REDACTED, redactAttributes, redactUrl, scrubString } from './redaction';

/** Options of {@link redactSpan}. */
export interface RedactSpanOptions {
  /**
   * Keep the trace state of span contexts (the span's, its parent's, its links'), entries
   * holding a credential's shape dropped. Default `false`: the trace state is dropped, since
   * a server span's comes from whoever called it (see `trustIncomingTraceState`).
   */
  readonly keepTraceState?: boolean;
}

function filterTraceState(state: TraceState): TraceState | undefined {
  const raw = state.serialize();
  const kept = raw
    .split(',')
    .filter((entry) => {
      const eq = entry.indexOf('=');
      return eq > 0 && !looksLikeCredential(entry.slice(eq + 1)) && scrubString(entry) === entry;
    })
    .join(',');
  if (kept === raw) return state;
  return kept === '' ? undefined : createTraceState(kept);
}

// The span context as exported: the OTLP transformer serializes `traceState` of the span's and
// of each link's context.
function safeContext(ctx: SpanContext, options: RedactSpanOptions): SpanContext {
  if (ctx.traceState === undefined) return ctx;
  const traceState = options.keepTraceState === true ? filterTraceState(ctx.traceState) : undefined;
  if (traceState === ctx.traceState) return ctx;
  const { traceState: _dropped, ...rest } = ctx;
  return traceState === undefined ? rest : { ...rest, traceState };
}

// A span name that carries a URL (`GET /x/<token>?q=…`, from an instrumentation or a hook that
// names spans by their URL) has it redacted like `url.full`. Route templates (`GET /v1/notes/:id`)
// and names without a URL are only scrubbed, at no extra cost.
const URL_IN_NAME = /[?#%+@]|\/\/|[^\s/]{15,}|eyJ/;

function redactName(name: string): string {
  if (!URL_IN_NAME.test(name)) return scrubString(name);
  const space = name.indexOf(' ');
  const start = name.startsWith('/') || name.includes('://') ? 0 : space === -1 ? -1 : space + 1;
  if (start === -1) return scrubString(name);
  return scrubString(`${name.slice(0, start)}${redactUrl(name.slice(start))}`);
}

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

function redactLink(link: Link, options: RedactSpanOptions): Link {
  const context = safeContext(link.context, options);
  if (link.attributes === undefined && context === link.context) return link;
  return { ...link, context, ...(link.attributes === undefined ? {} : { attributes: redactAttributes(link.attributes) }) };
}

/**
 * A redacted copy of a finished span: name, attributes, status message (dropped: error
 * messages carry user data), events (exception messages dropped, stacks reduced to frames),
 * links, and the trace state of its context, its parent's and its links' (dropped unless
 * `keepTraceState`). The resource is redacted once per resource by the exporter.
 */
export function redactSpan(span: ReadableSpan, options: RedactSpanOptions = {}): ReadableSpan {
  const status = span.status.message === undefined || span.status.message === '' ? span.status : { ...span.status, message: REDACTED };
  const own = span.spanContext();
  const spanContext = safeContext(own, options);
  const parent = span.parentSpanContext === undefined ? undefined : safeContext(span.parentSpanContext, options);
  return {
    name: redactName(span.name),
    kind: span.kind,
    spanContext: spanContext === own ? () => span.spanContext() : () => spanContext,
    ...(parent === undefined ? {} : { parentSpanContext: parent }),
    startTime: span.startTime,
    endTime: span.endTime,
    status,
    attributes: redactAttributes(span.attributes),
    links: span.links.map((link) => redactLink(link, options)),
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
