import { trace, type Span } from '@opentelemetry/api';

/**
 * The active span when it records; `undefined` without tracing, for an unsampled request, and
 * once the span has ended (the client went away first): what is written to it is worth
 * preparing only then.
 */
export function recordingSpan(): Span | undefined {
  const span = trace.getActiveSpan();
  return span?.isRecording() === true ? span : undefined;
}
