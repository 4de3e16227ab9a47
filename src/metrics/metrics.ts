import type { RequestHandler } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { FORWARDING_PROBLEMS, type BackendFailure, type BreakerState, type RateLimitObserver } from '../limit';
import type { ShedReason } from '../shed';
import type { CircuitObserver, CircuitState } from '../breaker';

/** Label values whose series start at 0 (a rate of nothing reads 0, not "no data"). */
const BACKEND_FAILURES: readonly BackendFailure[] = ['error', 'timeout', 'breaker_open'];
const SHED_REASONS: readonly ShedReason[] = ['event_loop_delay', 'in_flight'];

/** `rampart_rate_limit_breaker_state`: 0 closed, 1 open, 2 half-open. */
const BREAKER_GAUGE: Readonly<Record<BreakerState, number>> = { CLOSED: 0, OPEN: 1, HALF_OPEN: 2 };

/**
 * The rate limiter's instruments, and the observer that feeds them: pass it as the limiter's
 * `observer`.
 */
export interface RateLimitMetrics extends RateLimitObserver {
  /** Requests each policy took part in, by outcome: allowed, limited, failed_open, failed_closed. */
  readonly decisions: Counter<'policy' | 'outcome'>;
  /** Time to a store's answer (or failure), in seconds. */
  readonly decisionSeconds: Histogram<'store'>;
  /** Store failures by reason (error, timeout, breaker_open) and shard (a Cluster master; '' for one server). */
  readonly backendErrors: Counter<'store' | 'reason' | 'shard'>;
  /** 0 closed, 1 open, 2 half-open: the worst of the store's breakers. */
  readonly breakerState: Gauge<'store'>;
  /** The same per failure domain (`shard`: a Cluster master's `host:port`; '' for one server). */
  readonly shardBreakerState: Gauge<'store' | 'shard'>;
  /** Reloads of the policies (a changed policies file), by result: success, error (refused; the running policies stay). */
  readonly policyReloads: Counter<'result'>;
  /** Limited requests whose forwarding header did not name the client, by problem (trust_proxy_off, untrusted_peer, forwarded_ignored). */
  readonly forwardingProblems: Counter<'problem'>;
}

/** Shutdown and health instruments. */
export interface LifecycleMetrics {
  /** Time from the shutdown signal to the end of the HTTP drain. */
  readonly drainSeconds: Gauge;
  /**
   * The longest the HTTP drain may take (shutdown delay + drain timeout), set once at start:
   * `rampart_shutdown_elapsed_seconds` close to it means requests are about to be cut.
   */
  readonly shutdownLimitSeconds: Gauge;
  /** Starts `rampart_shutdown_elapsed_seconds` (time since the shutdown signal; 0 before it). */
  shutdownStarted(): void;
  /** Duration of each health check run. */
  readonly healthCheckSeconds: Histogram<'check'>;
  /** 1 when the last run of a check passed, else 0. */
  readonly healthCheckUp: Gauge<'check'>;
  /** Requests answered 503 `OVERLOADED`, by reason: event_loop_delay, in_flight. */
  readonly loadShed: Counter<'reason'>;
}

/** The circuit breakers' instruments, and the observer that feeds them: pass it as a breaker's `observer`. */
export interface BreakerMetrics extends CircuitObserver {
  /**
   * 0 closed, 1 open, 2 half-open, per breaker: those of `createCircuitBreaker` by their name, and
   * the rate limiter's as `rate_limit:<store>` (the worst of them) and `rate_limit:<store>:<shard>`.
   */
  readonly state: Gauge<'name'>;
  /** Changes of state, per breaker, from and to. */
  readonly transitions: Counter<'name' | 'from' | 'to'>;
}

/** What a connection pool says of itself (`pg.Pool` has these). */
export interface PoolFigures {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

/** What became of a tracer's sampled spans, monotonic counts (`activeTracing().spans` from `rampart/tracing`). */
export interface SpanFigures {
  readonly exporter: string;
  readonly exported: number;
  readonly failed: number;
  readonly dropped: number;
}

/** A Prometheus registry of rampart's instruments. Each call makes a new one: no global state. */
export interface Metrics {
  readonly registry: Registry;
  readonly rateLimit: RateLimitMetrics;
  readonly breakers: BreakerMetrics;
  readonly lifecycle: LifecycleMetrics;
  /**
   * Reports `pool`'s connections at each scrape as `rampart_pool_connections{pool=name,state}`
   * (`total`, `idle`, and `waiting`: callers queued for a connection).
   */
  observePool(name: string, pool: PoolFigures): void;
  /**
   * Reports the span export at each scrape as `rampart_trace_spans_total{exporter,result}`
   * (`exported`, `failed`: the collector refused or was down, `dropped`: the queue was full).
   */
  observeSpans(spans: SpanFigures): void;
  /** Reports `gate.inFlight` as `rampart_http_requests_in_flight` at each scrape. */
  observeInFlight(source: { readonly inFlight: number }): void;
  /** `GET /metrics` in the Prometheus text format. */
  handler(): RequestHandler;
}

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Also collect Node's process metrics (event loop lag, heap, GC). Default {@link METRICS_DEFAULTS.processMetrics}. */
  readonly processMetrics?: boolean;
}

/** Defaults of {@link createMetrics}. */
export const METRICS_DEFAULTS = Object.freeze({ processMetrics: true });

/** Creates a registry with the rate limiter's instruments. */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics ?? METRICS_DEFAULTS.processMetrics) collectDefaultMetrics({ register: registry });
  // Every instrument is registered on this registry only (no global state).
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Counter<L>({ name, help, labelNames, registers: [registry] });
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers: [registry] });
  const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]) =>
    new Histogram<L>({ name, help, labelNames, buckets, registers: [registry] });

  const decisions = counter('rampart_rate_limit_decisions_total', 'Rate limit decisions by policy and outcome.', ['policy', 'outcome']);
  const decisionSeconds = histogram(
    'rampart_rate_limit_decision_seconds',
    'Time to a rate limit decision from the store.',
    ['store'],
    // Past 0.1 s (the default deadline): how late a decision came when the process was slow to
    // run the deadline's timer (a saturated event loop), up to 1 s.
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  );
  const backendErrors = counter('rampart_rate_limit_backend_errors_total', 'Rate limit store failures by reason and shard.', [
    'store',
    'reason',
    'shard',
  ]);
  const breakerState = gauge(
    'rampart_rate_limit_breaker_state',
    'Circuit breaker state of the rate limit store: 0 closed, 1 open, 2 half-open.',
    ['store'],
  );
  const shardBreakerState = gauge(
    'rampart_rate_limit_shard_breaker_state',
    'Circuit breaker state per shard of the rate limit store: 0 closed, 1 open, 2 half-open.',
    ['store', 'shard'],
  );
  const policyReloads = counter('rampart_policy_reloads_total', 'Reloads of the rate limit policies by result: success, error.', [
    'result',
  ]);
  const forwardingProblems = counter(
    'rampart_rate_limit_forwarding_problems_total',
    'Limited requests whose X-Forwarded-For or Forwarded header did not name the client, by problem.',
    ['problem'],
  );
  for (const problem of FORWARDING_PROBLEMS) forwardingProblems.inc({ problem }, 0);
  const circuitState = gauge('rampart_circuit_breaker_state', 'Circuit breaker state: 0 closed, 1 open, 2 half-open.', ['name']);
  const transitions = counter('rampart_circuit_breaker_transitions_total', 'Circuit breaker state changes, by breaker, from and to.', [
    'name',
    'from',
    'to',
  ]);
  /** The last state of each breaker, to count the limiter's transitions (its observer says only the new state). */
  const lastState = new Map<string, CircuitState>();
  const circuitChanged = (name: string, state: CircuitState, from: CircuitState | undefined) => {
    circuitState.labels(name).set(BREAKER_GAUGE[state]);
    if (from !== undefined && from !== state) transitions.labels(name, from, state).inc();
    lastState.set(name, state);
  };
  const breakers: BreakerMetrics = { state: circuitState, transitions, circuitChanged };
  /** The rate limiter's breakers under the same scheme. */
  const limiterBreaker = (name: string, state: BreakerState | undefined) => {
    if (state === undefined) {
      circuitState.remove(name);
      lastState.delete(name);
      return;
    }
    circuitChanged(name, state, lastState.get(name));
  };
  const rateLimit: RateLimitMetrics = {
    forwardingProblems,
    forwardingProblem(problem) {
      forwardingProblems.labels(problem).inc();
    },
    decisions,
    decisionSeconds,
    backendErrors,
    breakerState,
    shardBreakerState,
    policyReloads,
    decisionCounter(policy, outcome) {
      const child = decisions.labels(policy, outcome);
      // From 0 as soon as a middleware can count it: a rate of nothing reads 0, not "no data".
      child.inc(0);
      return () => child.inc();
    },
    decisionTimer(store) {
      // The store's error series start at 0, so that their rates read 0 rather than nothing.
      for (const reason of BACKEND_FAILURES) backendErrors.inc({ store, reason, shard: '' }, 0);
      const child = decisionSeconds.labels(store);
      return (seconds) => child.observe(seconds);
    },
    backendError(store, reason, shard = '') {
      backendErrors.labels(store, reason, shard).inc();
    },
    breakerChanged(store, state) {
      breakerState.labels(store).set(BREAKER_GAUGE[state]);
      limiterBreaker(`rate_limit:${store}`, state);
    },
    shardBreakerChanged(store, shard, state) {
      if (shard !== '') limiterBreaker(`rate_limit:${store}:${shard}`, state);
      if (state === undefined) {
        // A forgotten shard (a master replaced, or the limiter closed): its series go with it.
        shardBreakerState.remove(store, shard);
        if (shard !== '') for (const reason of BACKEND_FAILURES) backendErrors.remove(store, reason, shard);
        return;
      }
      // A new shard's error series start at 0, like the store's (adding 0 to one that exists changes nothing).
      for (const reason of BACKEND_FAILURES) backendErrors.inc({ store, reason, shard }, 0);
      shardBreakerState.labels(store, shard).set(BREAKER_GAUGE[state]);
    },
  };
  let shutdownStartedAt: number | undefined;
  new Gauge({
    name: 'rampart_shutdown_elapsed_seconds',
    help: 'Time since the shutdown signal, 0 before it (answered on /metrics until the listener closes).',
    registers: [registry],
    collect() {
      this.set(shutdownStartedAt === undefined ? 0 : (performance.now() - shutdownStartedAt) / 1000);
    },
  });
  const lifecycle: LifecycleMetrics = {
    drainSeconds: gauge('rampart_shutdown_drain_seconds', 'Time from the shutdown signal to the end of the HTTP drain.', []),
    shutdownLimitSeconds: gauge(
      'rampart_shutdown_limit_seconds',
      'The longest the HTTP drain may take: shutdown delay plus drain timeout.',
      [],
    ),
    shutdownStarted() {
      shutdownStartedAt ??= performance.now();
    },
    healthCheckSeconds: histogram(
      'rampart_health_check_seconds',
      'Duration of health check runs.',
      ['check'],
      [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    ),
    healthCheckUp: gauge('rampart_health_check_up', '1 when the last run of the health check passed, else 0.', ['check']),
    loadShed: counter('rampart_load_shed_total', 'Requests answered 503 OVERLOADED by the load shedder, by reason.', ['reason']),
  };
  for (const reason of SHED_REASONS) lifecycle.loadShed.inc({ reason }, 0);
  let inFlightSource: { readonly inFlight: number } | undefined;
  new Gauge({
    name: 'rampart_http_requests_in_flight',
    help: 'Requests that entered the shutdown gate and have not finished.',
    registers: [registry],
    collect() {
      this.set(inFlightSource?.inFlight ?? 0);
    },
  });
  const pools = new Map<string, PoolFigures>();
  new Gauge({
    name: 'rampart_pool_connections',
    help: "A connection pool's connections: total, idle, and waiting (callers queued for one).",
    labelNames: ['pool', 'state'],
    registers: [registry],
    collect() {
      for (const [pool, p] of pools) {
        this.set({ pool, state: 'total' }, p.totalCount);
        this.set({ pool, state: 'idle' }, p.idleCount);
        this.set({ pool, state: 'waiting' }, p.waitingCount);
      }
    },
  });
  let spanSource: SpanFigures | undefined;
  const SPAN_RESULTS = ['exported', 'failed', 'dropped'] as const;
  const spansSeen = { exported: 0, failed: 0, dropped: 0 };
  new Counter({
    name: 'rampart_trace_spans_total',
    help: 'Sampled spans by what became of them: exported, failed (the collector refused or was down), dropped (export queue full).',
    labelNames: ['exporter', 'result'],
    registers: [registry],
    collect() {
      const s = spanSource;
      if (s === undefined) return;
      // The source counts; the counter follows it by the difference since the last scrape.
      for (const result of SPAN_RESULTS) {
        this.inc({ exporter: s.exporter, result }, Math.max(0, s[result] - spansSeen[result]));
        spansSeen[result] = s[result];
      }
    },
  });
  return {
    registry,
    rateLimit,
    breakers,
    observeSpans(spans) {
      spanSource = spans;
    },
    lifecycle,
    observePool(name, pool) {
      pools.set(name, pool);
    },
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
