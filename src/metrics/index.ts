export { createMetrics, METRICS_DEFAULTS } from './metrics';
export type { BreakerMetrics, LifecycleMetrics, Metrics, MetricsOptions, PoolFigures, RateLimitMetrics, SpanFigures } from './metrics';
