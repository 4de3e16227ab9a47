export { liveness } from './live';
export { createHealth, HEALTH_DEFAULTS } from './create-health';
export type { CheckResult, Health, HealthCheck, HealthOptions } from './create-health';
export { postgresCheck, redisCheck } from './checks';
export type { QueryablePool } from './checks';
