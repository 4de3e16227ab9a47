// No OpenTelemetry type here: `rampart` itself re-exports activeTracing, and its peers are optional.
/** What became of the sampled spans since tracing started (monotonic counts). */
export interface SpanCounts {
  /** The exporter's name for metrics: `otlp` (or `custom` for one given to `startTracing`). */
  readonly exporter: string;
  /** Accepted by the collector. */
  readonly exported: number;
  /** Sent, and refused or not answered in time (the collector down: lost). */
  readonly failed: number;
  /** Never sent: the export queue was full (the collector slower than the spans coming in). */
  readonly dropped: number;
}

/** A started SDK (what `startTracing` returns). */
export interface Tracing {
  /** What became of the sampled spans: exported, failed (the collector refused or was down), dropped (queue full). */
  readonly spans: SpanCounts;
  /** Exports what is buffered, then stops; rejects after `timeoutMs`. Spans ended later are dropped. */
  shutdown(timeoutMs: number): Promise<void>;
}

// The SDK is process-wide by nature (it patches modules and sets the global tracer provider),
// so the handle of the one started by the register entry is kept here for the shutdown.
let active: Tracing | undefined;

/** The tracing started by the register entry, if any: flush it last on shutdown. */
export function activeTracing(): Tracing | undefined {
  return active;
}

/** Records the process's tracing (called by the register entry). */
export function setActiveTracing(tracing: Tracing): void {
  if (active !== undefined) throw new Error('tracing was already started in this process');
  active = tracing;
}
