// What startTracing needs, whoever fills it in (the sample API: config/tracing-config.ts, from
// TRACING_ENABLED and the OTEL_* variables).

/** How spans are sent to the collector. */
export type OtlpProtocol = 'grpc' | 'http/protobuf' | 'http/json';
/** The samplers `OTEL_TRACES_SAMPLER` may name. */
export type TraceSampler =
  'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';

/** The resolved, validated, frozen tracing configuration (the `tracing` part of `Config`). */
export interface TracingConfig {
  readonly enabled: boolean;
  readonly endpoint: string | undefined;
  readonly serviceName: string;
  readonly protocol: OtlpProtocol;
  /** Parsed `OTEL_RESOURCE_ATTRIBUTES`. */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  readonly sampler: TraceSampler;
  /** Ratio for the `*traceidratio` samplers, 0..1. */
  readonly samplerRatio: number;
  /**
   * Honour incoming `tracestate` and `baggage` (trusted peers only); see
   * `StartTracingOptions.trustIncomingTraceState`, which overrides it. Default `false`.
   */
  readonly trustIncomingTraceState?: boolean;
}
