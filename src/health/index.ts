export { liveness } from './live';
export { createHealth, HEALTH_DEFAULTS } from './health';
export type { CheckResult, Health, HealthCheck, HealthOptions } from './health';
export { postgresCheck, postgresErrorCause, redisCheck } from './checks';
export type { QueryablePool } from './checks';
