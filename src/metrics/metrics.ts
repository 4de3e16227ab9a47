import type { RequestHandler } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The rate limiter's instruments. */
export interface RateLimitMetrics {
  /** Requests each policy took part in, by outcome: allowed, limited, failed_open, failed_closed. */
  readonly decisions: Counter<'policy' | 'outcome'>;
  /** Time to a store's answer (or failure), in seconds. */
  readonly decisionSeconds: Histogram<'store'>;
  /** Store failures by reason: error, timeout, breaker_open. */
  readonly backendErrors: Counter<'store' | 'reason'>;
  /** 0 closed, 1 open, 2 half-open. */
  readonly breakerState: Gauge<'store'>;
}

/** Shutdown and health instruments. */
export interface LifecycleMetrics {
  /** Time from the shutdown signal to the end of the HTTP drain. */
  readonly drainSeconds: Gauge;
  /** Duration of each health check run. */
  readonly healthCheckSeconds: Histogram<'check'>;
  /** 1 when the last run of a check passed, else 0. */
  readonly healthCheckUp: Gauge<'check'>;
  /** Requests answered 503 `OVERLOADED`, by reason: event_loop_delay, in_flight. */
  readonly loadShed: Counter<'reason'>;
}

/** A Prometheus registry of rampart's instruments. Each call makes a new one: no global state. */
export interface Metrics {
  readonly registry: Registry;
  readonly rateLimit: RateLimitMetrics;
  readonly lifecycle: LifecycleMetrics;
  /** Reports `gate.inFlight` as `rampart_http_requests_in_flight` at each scrape. */
  observeInFlight(source: { readonly inFlight: number }): void;
  /** `GET /metrics` in the Prometheus text format. */
  handler(): RequestHandler;
}

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Also collect Node's process metrics (event loop lag, heap, GC). Default true. */
  readonly processMetrics?: boolean;
}

/** Creates a registry with the rate limiter's instruments. */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const rateLimit: RateLimitMetrics = {
    decisions: new Counter({
      name: 'rampart_rate_limit_decisions_total',
      help: 'Rate limit decisions by policy and outcome.',
      labelNames: ['policy', 'outcome'],
      registers: [registry],
    }),
    decisionSeconds: new Histogram({
      name: 'rampart_rate_limit_decision_seconds',
      help: 'Time to a rate limit decision from the store.',
      labelNames: ['store'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers: [registry],
    }),
    backendErrors: new Counter({
      name: 'rampart_rate_limit_backend_errors_total',
      help: 'Rate limit store failures by reason.',
      labelNames: ['store', 'reason'],
      registers: [registry],
    }),
    breakerState: new Gauge({
      name: 'rampart_rate_limit_breaker_state',
      help: 'Circuit breaker state of the rate limit store: 0 closed, 1 open, 2 half-open.',
      labelNames: ['store'],
      registers: [registry],
    }),
  };
  const lifecycle: LifecycleMetrics = {
    drainSeconds: new Gauge({
      name: 'rampart_shutdown_drain_seconds',
      help: 'Time from the shutdown signal to the end of the HTTP drain.',
      registers: [registry],
    }),
    healthCheckSeconds: new Histogram({
      name: 'rampart_health_check_seconds',
      help: 'Duration of health check runs.',
      labelNames: ['check'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    healthCheckUp: new Gauge({
      name: 'rampart_health_check_up',
      help: '1 when the last run of the health check passed, else 0.',
      labelNames: ['check'],
      registers: [registry],
    }),
    loadShed: new Counter({
      name: 'rampart_load_shed_total',
      help: 'Requests answered 503 OVERLOADED by the load shedder, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
  let inFlightSource: { readonly inFlight: number } | undefined;
  new Gauge({
    name: 'rampart_http_requests_in_flight',
    help: 'Requests that entered the shutdown gate and have not finished.',
    registers: [registry],
    collect() {
      this.set(inFlightSource?.inFlight ?? 0);
    },
  });
  return {
    registry,
    rateLimit,
    lifecycle,
    observeInFlight(source) {
      inFlightSource = source;
    },
    handler() {
      return (_req, res, next) => {
        registry.metrics().then((text) => {
          res.setHeader('Content-Type', registry.contentType);
          res.setHeader('Cache-Control', 'no-store');
          res.send(text);
        }, next);
      };
    },
  };
}
