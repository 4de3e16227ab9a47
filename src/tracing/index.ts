// `rampart/tracing`: the SDK start-up, the redaction, and the tracing configuration. The
// OpenTelemetry packages themselves are optional peer dependencies, loaded by startTracing.
export { activeTracing } from './active-tracing';
export type { Tracing } from './active-tracing';
export { loadTracingConfig, TRACING_CONFIG_VARIABLES, tracingEnabled } from '../config/tracing-config';
export type { OtlpProtocol, TraceSampler } from '../config/tracing-config';
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
