import type { ForwardingProblem } from './guardrails';

/** Breaker states, as reported by `RateLimiter.breakerState` and to the observer. */
export type BreakerState = 'CLOSED' | 'OPEN' | 'HALF_OPEN';

/** Outcomes of a decision, per policy of a request. */
export type DecisionOutcome =
  | 'allowed'
  | 'limited'
  | 'blocked'
  | 'denied_by_other'
  | 'failed_open'
  | 'failed_closed'
  | 'skipped'
  | 'shadow_limited'
  // failMode 'local' while the store is down: admitted or refused in process, by this instance's share
  | 'local_allowed'
  | 'local_limited';

/** Why a store call failed: an error, the deadline, or a breaker that was open. */
export type BackendFailure = 'error' | 'timeout' | 'breaker_open';

/**
 * What the limiter reports, as calls (the same style as health's `onCheck` and the shedder's
 * `onShed`); `createMetrics().rateLimit` is one that feeds Prometheus. The factories are called
 * when a middleware is built, so the per-request work is one call of a prepared function.
 */
export interface RateLimitObserver {
  /** A counter of `outcome` for `policy`: the returned function runs once per such decision. */
  decisionCounter(policy: string, outcome: DecisionOutcome): () => void;
  /** The returned function gets the seconds each call to `store` took (or failed after). */
  decisionTimer(store: string): (seconds: number) => void;
  /** A failed store call; `shard`: the failure domain it went to (a Cluster master's `host:port`; '' for one server or several). */
  backendError(store: string, reason: BackendFailure, shard?: string): void;
  /** The worst state of the store's breakers, when it may have changed (and `CLOSED` at start). */
  breakerChanged(store: string, state: BreakerState): void;
  /** A request's forwarding header did not name its client (see guardrails.ts): counted every time. */
  forwardingProblem?(problem: ForwardingProblem): void;
  /** One failure domain's breaker changed state (`shard` '' for a store of one server); `undefined`: it was forgotten. */
  shardBreakerChanged?(store: string, shard: string, state: BreakerState | undefined): void;
}
