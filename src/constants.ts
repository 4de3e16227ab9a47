const live = '/health/live';
const ready = '/health/ready';
const started = '/health/started';

/**
 * Where the health probes are served: the sample API mounts them here, and the shutdown gate,
 * the load shedder, tracing and the sample's request log leave these paths alone by default.
 * Probes mounted elsewhere must be passed to those as options (`exemptPaths`, `ignorePaths`).
 */
export const HEALTH_PATHS = Object.freeze({
  live,
  ready,
  started,
  /** The three probes, for exemption lists (exact `req.path`). */
  all: Object.freeze([live, ready, started]),
  /** What every probe path starts with, for prefix matches on the raw URL. */
  prefix: '/health/',
});

/** Where the sample API serves Prometheus metrics (and tracing leaves it alone by default). */
export const METRICS_PATH = '/metrics';
