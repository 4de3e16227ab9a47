export { activeTracing } from './active-tracing';
export { RedactingSpanExporter } from './redacting-exporter';
export { REDACTED, redactAttributes, redactSpan, scrubSql, scrubString } from './redaction';
export { startTracing, TRACING_DEFAULTS } from './start-tracing';
export type { StartTracingOptions, Tracing, TracingConfig, TracingLogger } from './start-tracing';
