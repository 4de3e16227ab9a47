// `rampart/tracing`: the SDK start-up, the redaction, and the tracing configuration. The
// OpenTelemetry packages themselves are optional peer dependencies, loaded by startTracing.
export * from '../tracing';
export { loadTracingConfig, TRACING_CONFIG_VARIABLES, tracingEnabled } from '../config/tracing-config';
export type { OtlpProtocol, TraceSampler } from '../config/tracing-config';
