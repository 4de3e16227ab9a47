import type { IncomingMessage } from 'node:http';
import { DiagLogLevel, diag } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { ExpressInstrumentation, ExpressLayerType } from '@opentelemetry/instrumentation-express';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { PinoInstrumentation } from '@opentelemetry/instrumentation-pino';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import type { Config } from '../config';
import { RedactingSpanExporter } from './redacting-exporter';

/** What the tracing needs to know: the `tracing` part of {@link Config}. */
export type TracingConfig = Config['tracing'];

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
}

/** Defaults of {@link startTracing}. */
export const TRACING_DEFAULTS = Object.freeze({
  ignorePaths: Object.freeze(['/health/', '/metrics']),
  exportTimeoutMs: 5_000,
  scheduledDelayMs: 1_000,
});

/** A started SDK. */
export interface Tracing {
  /** Exports what is buffered, then stops; rejects after `timeoutMs`. Spans ended later are dropped. */
  shutdown(timeoutMs: number): Promise<void>;
}

function sampler(config: TracingConfig): Sampler {
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

function otlpExporter(config: TracingConfig): SpanExporter {
  const endpoint = config.endpoint ?? 'http://localhost:4318';
  const base = endpoint.replace(/\/+$/, '');
  const timeoutMillis = TRACING_DEFAULTS.exportTimeoutMs;
  switch (config.protocol) {
    case 'grpc':
      return new GrpcExporter({ url: base, timeoutMillis });
    case 'http/json':
      return new JsonExporter({ url: `${base}/v1/traces`, timeoutMillis });
    case 'http/protobuf':
      return new ProtoExporter({ url: `${base}/v1/traces`, timeoutMillis });
  }
}

/**
 * Starts the OpenTelemetry SDK: call it before express, pg and ioredis are loaded (the
 * register entry does). Only the http, express, pg, ioredis and pino instrumentations are
 * loaded; every span leaves through {@link RedactingSpanExporter}; no metrics or logs are
 * exported; no signal handler is installed (the lifecycle flushes it last).
 */
export function startTracing(options: StartTracingOptions): Tracing {
  const { config, logger } = options;
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
  const exporter = new RedactingSpanExporter(options.exporter ?? otlpExporter(config));
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ ...config.resourceAttributes, 'service.name': config.serviceName }),
    autoDetectResources: false,
    sampler: sampler(config),
    spanProcessors: [
      new BatchSpanProcessor(exporter, {
        exportTimeoutMillis: TRACING_DEFAULTS.exportTimeoutMs,
        scheduledDelayMillis: TRACING_DEFAULTS.scheduledDelayMs,
      }),
    ],
    metricReaders: [],
    logRecordProcessors: [],
    textMapPropagator: new W3CTraceContextPropagator(),
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req: IncomingMessage) => ignore.some((p) => (req.url ?? '').startsWith(p)),
        // Outgoing calls are traced only inside a request.
        requireParentforOutgoingSpans: true,
      }),
      // One span per middleware layer (body parser, gate, limiter, ...) would multiply the spans of
      // every request; the router and handler spans and the route template are kept.
      new ExpressInstrumentation({ ignoreLayersType: [ExpressLayerType.MIDDLEWARE] }),
      new PgInstrumentation({ enhancedDatabaseReporting: false, requireParentSpan: true, ignoreConnectSpans: true }),
      // The rate limiter's keys carry identities: only the command name is recorded.
      new IORedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: (command: string) => command }),
      new PinoInstrumentation({ disableLogSending: true }),
    ],
  });
  sdk.start();
  return {
    async shutdown(timeoutMs: number) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          sdk.shutdown(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`tracing did not flush within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
