import { DiagLogLevel, diag, trace } from '@opentelemetry/api';
import type { Sampler, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { OtlpProtocol, TracingConfig } from './options';
import { HEALTH_PATHS, METRICS_PATH } from '../constants';
import { withTimeout } from '../internal/with-timeout';
import type { Tracing } from './active-tracing';
import { createSpanAccounting } from './export-counts';
import { RedactingSpanExporter } from './redacting-exporter';
import { traceIncomingRequests } from './server-spans';
import { requireTracingPackages, type TracingPeerPackage } from './tracing-packages';

export type { TracingConfig } from './options';
export type { Tracing } from './active-tracing';

/** The minimal logger SDK diagnostics go to (at warn and above). */
export interface TracingLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Options of {@link startTracing}. */
export interface StartTracingOptions {
  readonly config: TracingConfig;
  readonly logger?: TracingLogger;
  /** Incoming requests on these path prefixes make no span. Default: health probes and metrics. */
  readonly ignorePaths?: readonly string[];
  /** Replace the OTLP exporter (tests); it still sits behind the redaction. */
  readonly exporter?: SpanExporter;
  /**
   * Honour an incoming request's `tracestate` (and `baggage`, when the propagator reads it),
   * and export span contexts' trace state (entries holding a credential dropped). Default
   * `false`: only `traceparent` is read, and no trace state is exported. For services whose
   * every caller is a trusted peer.
   */
  readonly trustIncomingTraceState?: boolean;
}

/** Defaults of {@link startTracing}. */
export const TRACING_DEFAULTS = Object.freeze({
  ignorePaths: Object.freeze([HEALTH_PATHS.prefix, METRICS_PATH]),
  exportTimeoutMs: 5_000,
  scheduledDelayMs: 1_000,
  /** Spans waiting for their export past which the next ones are dropped (and counted). */
  maxQueueSize: 2_048,
  /** Collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is unset (the OTLP defaults). */
  httpEndpoint: 'http://localhost:4318',
  grpcEndpoint: 'http://localhost:4317',
});

// Everything startTracing loads, whatever the protocol.
const ALWAYS = [
  '@opentelemetry/core',
  '@opentelemetry/instrumentation-http',
  '@opentelemetry/instrumentation-ioredis',
  '@opentelemetry/instrumentation-pg',
  '@opentelemetry/instrumentation-pino',
  '@opentelemetry/resources',
  '@opentelemetry/sdk-node',
  '@opentelemetry/sdk-trace-base',
] as const satisfies readonly TracingPeerPackage[];

// Only the chosen protocol's exporter is required: the gRPC one pulls in @grpc/grpc-js.
const EXPORTER_PACKAGE = {
  grpc: '@opentelemetry/exporter-trace-otlp-grpc',
  'http/json': '@opentelemetry/exporter-trace-otlp-http',
  'http/protobuf': '@opentelemetry/exporter-trace-otlp-proto',
} as const satisfies Record<OtlpProtocol, TracingPeerPackage>;

function sampler(config: TracingConfig, base: typeof import('@opentelemetry/sdk-trace-base')): Sampler {
  const { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } = base;
  const ratio = new TraceIdRatioBasedSampler(config.samplerRatio);
  switch (config.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio;
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio });
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

type Modules = ReturnType<typeof requireTracingPackages<(typeof ALWAYS)[number] | (typeof EXPORTER_PACKAGE)[OtlpProtocol]>>;

/** Where spans go when `OTEL_EXPORTER_OTLP_ENDPOINT` is unset: the OTLP default of the protocol. */
export function defaultEndpoint(protocol: OtlpProtocol): string {
  return protocol === 'grpc' ? TRACING_DEFAULTS.grpcEndpoint : TRACING_DEFAULTS.httpEndpoint;
}

// `m` holds the exporter of config.protocol only: each case reads its own.
function otlpExporter(config: TracingConfig, m: Modules): SpanExporter {
  const base = (config.endpoint ?? defaultEndpoint(config.protocol)).replace(/\/+$/, '');
  const timeoutMillis = TRACING_DEFAULTS.exportTimeoutMs;
  switch (config.protocol) {
    case 'grpc':
      return new m['@opentelemetry/exporter-trace-otlp-grpc'].OTLPTraceExporter({ url: base, timeoutMillis });
    case 'http/json':
      return new m['@opentelemetry/exporter-trace-otlp-http'].OTLPTraceExporter({ url: `${base}/v1/traces`, timeoutMillis });
    case 'http/protobuf':
      return new m['@opentelemetry/exporter-trace-otlp-proto'].OTLPTraceExporter({ url: `${base}/v1/traces`, timeoutMillis });
  }
}

/**
 * Starts the OpenTelemetry SDK: call it before express, pg and ioredis are loaded (the
 * register entry does). Incoming requests get one server span each (`traceIncomingRequests`);
 * the http (outgoing calls), pg, ioredis and pino instrumentations are loaded, nothing else;
 * every span leaves through {@link RedactingSpanExporter}; no metrics or logs are exported; no
 * signal handler is installed (the lifecycle flushes it last).
 *
 * The OpenTelemetry packages are loaded here, not when `rampart/tracing` is imported: they are
 * optional peer dependencies (see `TRACING_PEER_PACKAGES`). Throws
 * `MissingTracingPackagesError` naming every one this configuration needs that is not
 * installed, and the `npm install` command, before anything is started.
 */
export function startTracing(options: StartTracingOptions): Tracing {
  const { config, logger } = options;
  // All at once, so that one error names every missing package.
  const m: Modules = requireTracingPackages([...ALWAYS, ...(options.exporter === undefined ? [EXPORTER_PACKAGE[config.protocol]] : [])]);
  const { W3CTraceContextPropagator } = m['@opentelemetry/core'];
  const { HttpInstrumentation } = m['@opentelemetry/instrumentation-http'];
  const { IORedisInstrumentation } = m['@opentelemetry/instrumentation-ioredis'];
  const { PgInstrumentation } = m['@opentelemetry/instrumentation-pg'];
  const { PinoInstrumentation } = m['@opentelemetry/instrumentation-pino'];
  const { resourceFromAttributes } = m['@opentelemetry/resources'];
  const { NodeSDK } = m['@opentelemetry/sdk-node'];
  const { BatchSpanProcessor } = m['@opentelemetry/sdk-trace-base'];
  const ignore = options.ignorePaths ?? TRACING_DEFAULTS.ignorePaths;
  if (logger !== undefined) {
    diag.setLogger(
      {
        error: (message, ...args) => logger.error({ args: args.map(String) }, `opentelemetry: ${message}`),
        warn: (message, ...args) => logger.warn({ args: args.map(String) }, `opentelemetry: ${message}`),
        info: () => undefined,
        debug: () => undefined,
        verbose: () => undefined,
      },
      { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
    );
  }
  const trustIncomingTraceState = (options.trustIncomingTraceState ?? config.trustIncomingTraceState) === true;
  const accounting = createSpanAccounting(options.exporter === undefined ? 'otlp' : 'custom', TRACING_DEFAULTS.maxQueueSize);
  const exporter = accounting.exporter(
    new RedactingSpanExporter(options.exporter ?? otlpExporter(config, m), { keepTraceState: trustIncomingTraceState }),
  );
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ ...config.resourceAttributes, 'service.name': config.serviceName }),
    autoDetectResources: false,
    sampler: sampler(config, m['@opentelemetry/sdk-trace-base']),
    spanProcessors: [
      accounting.processor(
        new BatchSpanProcessor(exporter, {
          exportTimeoutMillis: TRACING_DEFAULTS.exportTimeoutMs,
          scheduledDelayMillis: TRACING_DEFAULTS.scheduledDelayMs,
          maxQueueSize: TRACING_DEFAULTS.maxQueueSize,
        }),
      ),
    ],
    metricReaders: [],
    logRecordProcessors: [],
    textMapPropagator: new W3CTraceContextPropagator(),
    instrumentations: [
      // Outgoing calls only, and only inside a request: incoming requests get rampart's own
      // server span (./server-spans), which costs a fraction of this one's and Express's.
      new HttpInstrumentation({ disableIncomingRequestInstrumentation: true, requireParentforOutgoingSpans: true }),
      new PgInstrumentation({ enhancedDatabaseReporting: false, requireParentSpan: true, ignoreConnectSpans: true }),
      // The rate limiter's keys carry identities: only the command name is recorded.
      new IORedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: (command: string) => command }),
      new PinoInstrumentation({ disableLogSending: true }),
    ],
  });
  sdk.start();
  const untrace = traceIncomingRequests({ tracer: trace.getTracer('rampart'), ignorePaths: ignore, trustIncomingTraceState });
  return {
    spans: accounting.counts,
    async shutdown(timeoutMs: number) {
      untrace();
      await withTimeout(sdk.shutdown(), timeoutMs, () => {
        throw new Error(`tracing did not flush within ${timeoutMs} ms`);
      });
    },
  };
}
