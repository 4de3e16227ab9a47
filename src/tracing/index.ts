// The tracing capability: the SDK start-up, the redaction, incoming request spans. Published as
// `rampart/tracing` with the tracing configuration (src/entries/tracing.ts).
export { activeTracing } from './active-tracing';
export type { SpanCounts, Tracing } from './active-tracing';
export { RedactingSpanExporter } from './redacting-exporter';
// Every export of the redaction module is public: the one rule set for spans and logs.
export * from './redaction';
export { redactSpan } from './redact-span';
export type { RedactSpanOptions } from './redact-span';
export { defaultEndpoint, startTracing, TRACING_DEFAULTS } from './start-tracing';
export { traceIncomingRequests } from './server-spans';
export type { IncomingRequestTracingOptions } from './server-spans';
export type { StartTracingOptions, TracingConfig, TracingLogger } from './start-tracing';
export { MissingTracingPackagesError, TRACING_PEER_PACKAGES } from './tracing-packages';
export type { TracingPeerPackage } from './tracing-packages';
