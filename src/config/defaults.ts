import { RATE_LIMITER_DEFAULTS } from '../limit/options';
import { LOAD_SHEDDER_DEFAULTS } from '../shed/load-shedder-defaults';
import { LIFECYCLE_DEFAULTS } from '../shutdown/lifecycle-defaults';

/**
 * The default of every environment variable, in one place. The configuration table (docs/configuration.md) and
 * `.env.example` repeat these values and a unit test pins them. A variable that sets an option
 * of a library factory takes that factory's default, never a copy of it.
 */
export const CONFIG_DEFAULTS = Object.freeze({
  MODE: 'dev',
  PORT: 8000,
  // With MODE=prod (or METRICS_HOST set): /metrics on a listener of its own on this port, never
  // on PORT; in dev, unset, /metrics is served on PORT (config.ts, loadConfig).
  METRICS_PORT: 9464,
  LOG_LEVEL: 'info',
  RATE_LIMIT_ENABLED: true,
  RATE_LIMIT_BACKEND: 'memory',
  REDIS_TLS_SKIP_HOSTNAME_CHECK: false,
  RATE_LIMIT_DEFAULT_RPS: 5,
  RATE_LIMIT_DEFAULT_BURST: 10,
  RATE_LIMIT_DEADLINE_MS: RATE_LIMITER_DEFAULTS.deadlineMs,
  RATE_LIMIT_DEV_FAIL_OPEN: false,
  TRUST_PROXY: false,
  TRACING_ENABLED: false,
  OTEL_SERVICE_NAME: 'rampart-sample',
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
  OTEL_TRACES_SAMPLER: 'parentbased_always_on',
  OTEL_TRACES_SAMPLER_ARG: 1,
  TRACING_TRUST_INCOMING_TRACESTATE: false,
  DB_BREAKER_PRESET: 'balanced',
  SHUTDOWN_DELAY_MS: LIFECYCLE_DEFAULTS.delayMs,
  SHUTDOWN_DRAIN_TIMEOUT_MS: LIFECYCLE_DEFAULTS.drainTimeoutMs,
  LOAD_SHED_ENABLED: true,
  LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: LOAD_SHEDDER_DEFAULTS.maxEventLoopDelayMs,
  LOAD_SHED_MAX_IN_FLIGHT: LOAD_SHEDDER_DEFAULTS.maxInFlight,
} as const);
