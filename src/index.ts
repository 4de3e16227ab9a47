// rampart's public surface: re-exports only.

// Errors: the stable codes, their statuses, and the one writer of every error body.
export {
  checkExpectationListener,
  clientErrorListener,
  ERROR_STATUS,
  HttpError,
  errorHandler,
  notFoundHandler,
  retryAfterSeconds,
  sendError,
} from './errors';
export type { ErrorBody, ErrorCode, ErrorHandlerOptions, SendErrorOptions } from './errors';

// Misconfiguration: the factories refuse a bad option with an OptionsError (a TypeError naming
// `.component` and `.option`), when called; exported so that callers can tell it from other
// start-up failures, and so that an app's own factories (the sample's database) throw the same.
export { OptionsError } from './internal/options';

// Request ids: X-Request-Id on every response, the caller's when well-formed.
export { REQUEST_ID_HEADER, REQUEST_ID_PATTERN, requestId, requestIdFor, requestIdOf } from './request-id';

// Configuration: the only reader of process.env. `loadTracingConfig` reads the tracing
// variables alone (what the tracing preload uses); `loadConfig` reads them all;
// `loadPolicyFile` reads the file RATE_LIMIT_POLICIES_FILE names; `redisClientAccess` reads the
// files REDIS_TLS_* name into createRedisClient's options, `certificateRefusal` says which
// variable a refused Redis certificate points at.
export {
  certificateRefusal,
  CONFIG_DEFAULTS,
  CONFIG_VARIABLES,
  ConfigError,
  defaultPolicies,
  loadConfig,
  loadPolicyFile,
  loadTracingConfig,
  redisClientAccess,
  TRACING_CONFIG_VARIABLES,
  tracingEnabled,
} from './config';
export type { Config, LogLevel, Mode, OtlpProtocol, RedisAccess, TraceSampler, TracingConfig, TrustProxy } from './config';

// Circuit breakers for any async dependency (a database, an outbound call), with presets.
export { CIRCUIT_PRESETS, createCircuitBreaker, DependencyUnavailableError } from './breaker';
export type { CircuitBreaker, CircuitBreakerOptions, CircuitNumbers, CircuitObserver, CircuitPreset, CircuitState } from './breaker';

// Health probes.
export { createHealth, HEALTH_DEFAULTS, liveness, postgresCheck, postgresErrorCause, redisCheck } from './health';
export type { CheckResult, Health, HealthCheck, HealthOptions, QueryablePool } from './health';
// Where the probes live by default, for an app that mounts them and for its own exemption lists.
export { HEALTH_PATHS, METRICS_PATH } from './constants';

// Shutdown: the gate middleware and the signal-driven lifecycle.
export { createLifecycle, createShutdownGate, LIFECYCLE_DEFAULTS, SHUTDOWN_GATE_DEFAULTS } from './shutdown';
export type {
  CleanupPhase,
  GateState,
  Lifecycle,
  LifecycleLogger,
  LifecycleOptions,
  ShutdownGate,
  ShutdownGateOptions,
  ShutdownReport,
} from './shutdown';

// Load shedding: 503 OVERLOADED on event-loop delay or too many requests in flight.
export { createLoadShedder, LOAD_SHEDDER_DEFAULTS } from './shed';
export type { LoadShedder, LoadShedderOptions, LoadState, ShedReason } from './shed';

// Request deadlines.
export { deadlineSignal, requestDeadline } from './deadline';
export type { RequestDeadlineOptions } from './deadline';

// Rate limiting: the limiter, its stores, policies and keys.
export {
  createMemoryStore,
  createRateLimiter,
  createRedisStore,
  redisAccessProblem,
  REDIS_STORE_DEFAULTS,
  isStoreMisuse,
  ipIdentity,
  MEMORY_STORE_DEFAULTS,
  checkPolicySet,
  memoryPerIdentity,
  MEMORY_PER_IDENTITY,
  MEMORY_WARN_BYTES,
  parsePolicySet,
  PolicyError,
  rateLimit,
  rateLimitFailure,
  RATE_LIMITER_DEFAULTS,
  safeIdentity,
  customIdentity,
  StoreUnavailableError,
  admittedAt,
  FORWARDING_PROBLEMS,
} from './limit';
export type {
  BreakerOptions,
  BreakerState,
  CallGuard,
  Check,
  CostFunction,
  PolicyMode,
  SlidingWindowCheck,
  SlidingWindowCounterCheck,
  QuotaCheck,
  ConcurrencyCheck,
  ConcurrencyPolicy,
  QuotaPeriod,
  QuotaPolicy,
  TokenBucketCheck,
  Decision,
  DecideOptions,
  DecisionOutcome,
  FailMode,
  FailureDomains,
  HeaderForm,
  KeyFunction,
  KeyKind,
  ConsumeIdentity,
  ConsumeOptions,
  Consumed,
  ConsumedPolicy,
  DecidedBy,
  Peeked,
  OverrideNumbers,
  MemoryStoreOptions,
  PolicyCheck,
  PolicyOptions,
  PolicySet,
  ForwardingProblem,
  RateLimiterWarning,
  Settle,
  SettleFunction,
  RateLimiter,
  RateLimiterOptions,
  RateLimitMiddlewareOptions,
  RateLimitStore,
  RedisStoreOptions,
  RedisStoreClient,
  IoredisFamilyClient,
  NodeRedisClient,
  NodeRedisCluster,
  SlidingWindowCounterPolicy,
  SlidingWindowPolicy,
  SurfaceOptions,
  TokenBucketPolicy,
} from './limit';

// Redis: one factory from a REDIS_URL to an ioredis client.
export { closeRedisClient, createRedisClient, parseRedisUrl, REDIS_CLIENT_DEFAULTS, RedisUrlError } from './redis';
export type { RedisClientOptions, RedisTarget } from './redis';

// Metrics: a Prometheus registry and GET /metrics.
export { createMetrics, METRICS_DEFAULTS } from './metrics';
export type { BreakerMetrics, LifecycleMetrics, Metrics, MetricsOptions, PoolFigures, RateLimitMetrics, SpanFigures } from './metrics';

// Tracing: the redaction policy and the handle of the tracing the register entry started.
// The SDK itself is in `rampart/tracing` (and `rampart/tracing/register`), so that an app
// without tracing never loads it.
export { activeTracing } from './tracing/active-tracing';
// Every export of the redaction module is public: the one rule set for spans and logs.
export * from './tracing/redaction';
export type { Tracing } from './tracing/active-tracing';
