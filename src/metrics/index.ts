export { createMetrics } from './metrics';
export type { LifecycleMetrics, Metrics, MetricsOptions, RateLimitMetrics } from './metrics';
