/** A started SDK (what `startTracing` returns). */
export interface Tracing {
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
