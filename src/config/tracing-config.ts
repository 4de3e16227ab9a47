import { z } from 'zod';
import { CONFIG_DEFAULTS } from './defaults';
import type { TracingConfig } from '../tracing/options';
import { bool, ConfigError, parseVariables, type Env, type Variable } from './variables';

// The shape is tracing's own (src/tracing/options.ts); this module fills it from the environment.
export type { OtlpProtocol, TraceSampler, TracingConfig } from '../tracing/options';

const httpUrl = z.string().refine((v) => {
  const u = URL.canParse(v) ? new URL(v) : undefined;
  return u !== undefined && (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
});

// OTEL_RESOURCE_ATTRIBUTES as the spec writes it: key=value pairs, comma-separated,
// percent-encoded. The SDK drops a malformed value silently; here it is refused.
const resourceAttributes = z.string().transform((v, ctx): Readonly<Record<string, string>> => {
  const out: Record<string, string> = {};
  for (const pair of v.split(',')) {
    const eq = pair.indexOf('=');
    const key = eq === -1 ? '' : pair.slice(0, eq).trim();
    let value: string;
    try {
      value = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      ctx.addIssue({ code: 'custom', message: 'bad percent-encoding' });
      return z.NEVER;
    }
    if (!/^[A-Za-z0-9._-]{1,255}$/.test(key) || value.length > 255 || key in out) {
      ctx.addIssue({ code: 'custom', message: 'bad pair' });
      return z.NEVER;
    }
    out[key] = value;
  }
  return Object.freeze(out);
});
const ratio = z
  .string()
  .regex(/^(0(\.\d+)?|1(\.0+)?)$/)
  .transform(Number);

const TRACING_ENABLED = { TRACING_ENABLED: { schema: bool, expected: '"true" or "false"' } } satisfies Record<string, Variable<unknown>>;

/** The tracing variables, in the order they are checked. `loadConfig` checks them too, through {@link loadTracingConfig}. */
export const TRACING_VARIABLES = {
  ...TRACING_ENABLED,
  OTEL_EXPORTER_OTLP_ENDPOINT: { schema: httpUrl, expected: 'an absolute http:// or https:// URL', secret: true },
  OTEL_SERVICE_NAME: { schema: z.string().min(1).max(256), expected: 'a non-empty service name' },
  OTEL_EXPORTER_OTLP_PROTOCOL: {
    schema: z.enum(['grpc', 'http/protobuf', 'http/json']),
    expected: '"grpc", "http/protobuf" or "http/json"',
  },
  OTEL_RESOURCE_ATTRIBUTES: {
    schema: resourceAttributes,
    expected: 'comma-separated key=value pairs (keys [A-Za-z0-9._-], values percent-encoded, at most 255 characters each)',
  },
  OTEL_TRACES_SAMPLER: {
    schema: z.enum([
      'always_on',
      'always_off',
      'traceidratio',
      'parentbased_always_on',
      'parentbased_always_off',
      'parentbased_traceidratio',
    ]),
    expected: 'one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio',
  },
  OTEL_TRACES_SAMPLER_ARG: { schema: ratio, expected: 'a sampling ratio from 0 to 1' },
  TRACING_TRUST_INCOMING_TRACESTATE: { schema: bool, expected: '"true" or "false"' },
} satisfies Record<string, Variable<unknown>>;

/** Every environment variable the tracing reads, and the only ones {@link loadTracingConfig} reads. */
export const TRACING_CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(TRACING_VARIABLES));

/**
 * Whether `TRACING_ENABLED` turns tracing on (default `false`), reading that one variable only:
 * the preload asks this first, so an application that does not trace never has its other
 * tracing variables judged. Throws {@link ConfigError} when it is neither `true` nor `false`.
 */
export function tracingEnabled(env: Env = process.env): boolean {
  return parseVariables(TRACING_ENABLED, env).TRACING_ENABLED ?? CONFIG_DEFAULTS.TRACING_ENABLED;
}

/**
 * Reads, validates and freezes the tracing configuration from `TRACING_ENABLED` and the
 * `OTEL_*` variables of {@link TRACING_CONFIG_VARIABLES}, and from nothing else, so that the
 * tracing preload works in any application whatever the rest of its environment holds.
 * Every variable is checked even when tracing is off. Throws {@link ConfigError}.
 */
export function loadTracingConfig(env: Env = process.env): TracingConfig {
  const v = parseVariables(TRACING_VARIABLES, env);
  const d = CONFIG_DEFAULTS;
  if (v.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined) {
    const u = new URL(v.OTEL_EXPORTER_OTLP_ENDPOINT);
    if (u.username !== '' || u.password !== '' || u.search !== '' || u.hash !== '') {
      throw new ConfigError(
        'OTEL_EXPORTER_OTLP_ENDPOINT',
        'OTEL_EXPORTER_OTLP_ENDPOINT must not carry credentials, a query or a fragment. Fix: use the bare collector URL (e.g. http://jaeger:4318) and put headers in OTEL_EXPORTER_OTLP_HEADERS.',
      );
    }
  }
  return Object.freeze({
    enabled: v.TRACING_ENABLED ?? d.TRACING_ENABLED,
    endpoint: v.OTEL_EXPORTER_OTLP_ENDPOINT,
    serviceName: v.OTEL_SERVICE_NAME ?? d.OTEL_SERVICE_NAME,
    protocol: v.OTEL_EXPORTER_OTLP_PROTOCOL ?? d.OTEL_EXPORTER_OTLP_PROTOCOL,
    resourceAttributes: v.OTEL_RESOURCE_ATTRIBUTES ?? Object.freeze({}),
    sampler: v.OTEL_TRACES_SAMPLER ?? d.OTEL_TRACES_SAMPLER,
    samplerRatio: v.OTEL_TRACES_SAMPLER_ARG ?? d.OTEL_TRACES_SAMPLER_ARG,
    trustIncomingTraceState: v.TRACING_TRUST_INCOMING_TRACESTATE ?? d.TRACING_TRUST_INCOMING_TRACESTATE,
  });
}
