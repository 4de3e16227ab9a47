export { createMetrics, METRICS_DEFAULTS } from './metrics';
export type { LifecycleMetrics, Metrics, MetricsOptions, RateLimitMetrics } from './metrics';
