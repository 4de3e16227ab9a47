export { createMemoryStore, MEMORY_STORE_DEFAULTS } from './memory-store';
export type { MemoryStoreOptions } from './memory-store';
export { createRedisStore, REDIS_STORE_DEFAULTS } from './redis/store';
export type { RedisStoreOptions } from './redis/store';
export type { RedisStoreClient } from './redis/connection-of';
export { redisAccessProblem } from './redis/access';
export type { IoredisFamilyClient } from './redis/connection';
export type { NodeRedisClient, NodeRedisCluster } from './redis/node-redis-connection';
export { createRateLimiter, isStoreMisuse, rateLimitFailure, RATE_LIMITER_DEFAULTS } from './rate-limiter';
export { rateLimit } from './rate-limit';
export { StoreUnavailableError } from './store-unavailable';
export type {
  BreakerOptions,
  BreakerState,
  BackendFailure,
  DecisionOutcome,
  RateLimitObserver,
  RateLimiter,
  RateLimiterOptions,
  SurfaceOptions,
} from './rate-limiter';
export type { RateLimitMiddlewareOptions } from './rate-limit';
export type { HeaderForm } from './headers';
export { customIdentity, ipIdentity, safeIdentity } from './keys';
export { checkPolicySet, parsePolicySet, PolicyError } from './policy-set';
export { formatBytes, MEMORY_PER_IDENTITY, MEMORY_WARN_BYTES, memoryPerIdentity } from './memory-estimate';
export type { PolicyCheck, PolicySet } from './policy-set';
export type {
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
  FailMode,
  KeyFunction,
  KeyKind,
  ConsumeIdentity,
  ConsumeOptions,
  Consumed,
  ConsumedPolicy,
  DecidedBy,
  Peeked,
  PolicyOptions,
  Settle,
  SettleFunction,
  SlidingWindowCounterPolicy,
  SlidingWindowPolicy,
  TokenBucketPolicy,
} from './types';
export { admittedAt } from './store';
export { FORWARDING_PROBLEMS } from './guardrails';
export type { ForwardingProblem, RateLimiterWarning } from './guardrails';
export type { CallGuard, Decision, DecideOptions, FailureDomains, OverrideNumbers, RateLimitStore } from './store';
