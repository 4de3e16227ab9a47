import { performance } from 'node:perf_hooks';
import { OptionsError, positiveInteger } from '../internal/options';

/** A breaker's state: closed (calls go through), open (refused at once), half-open (a few trial calls). */
export type CircuitState = 'CLOSED' | 'OPEN' | 'HALF_OPEN';

/** The named presets of the production guide: how quickly a breaker opens and how cautiously it recovers. */
export type CircuitPreset = 'conservative' | 'balanced' | 'tolerant';

/** The numbers of a breaker (every one overridable; see {@link CIRCUIT_PRESETS}). */
export interface CircuitNumbers {
  /** Consecutive failures that open it. */
  readonly failureThreshold: number;
  /** A failure rate over the window (percent) that opens it, once the window holds `volumeThreshold` calls. */
  readonly errorThresholdPercentage: number;
  /** Calls in the window before the rate counts. */
  readonly volumeThreshold: number;
  /** The window of the failure rate, ms. */
  readonly rollingWindowMs: number;
  /** How long it stays open before trial calls are let through, ms. */
  readonly resetTimeoutMs: number;
  /** Trial calls let through at once while half-open; the first success closes it, a failure opens it again. */
  readonly halfOpenCalls: number;
  /** A call slower than this is a failure (a partition gives no error, only silence), ms. */
  readonly timeoutMs: number;
}

const COMMON = { volumeThreshold: 10, rollingWindowMs: 10_000, timeoutMs: 2_000 } as const;

/**
 * The presets: conservative (open after 3 failures or 10 % failing, 5 min before one trial call),
 * balanced (5, 50 %, 60 s, 3 trial calls), tolerant (10, 70 %, 30 s, 5). Each with a 10 s window
 * that counts once it holds 10 calls, and a 2 s call timeout. docs/breakers.md repeats them; a
 * unit test pins them.
 */
export const CIRCUIT_PRESETS: Readonly<Record<CircuitPreset, CircuitNumbers>> = Object.freeze({
  conservative: Object.freeze({ ...COMMON, failureThreshold: 3, errorThresholdPercentage: 10, resetTimeoutMs: 300_000, halfOpenCalls: 1 }),
  balanced: Object.freeze({ ...COMMON, failureThreshold: 5, errorThresholdPercentage: 50, resetTimeoutMs: 60_000, halfOpenCalls: 3 }),
  tolerant: Object.freeze({ ...COMMON, failureThreshold: 10, errorThresholdPercentage: 70, resetTimeoutMs: 30_000, halfOpenCalls: 5 }),
});

/** What a breaker reports (`createMetrics().breakers` is one for Prometheus). */
export interface CircuitObserver {
  /** The breaker's state, at its creation (`CLOSED`) and at each change, with the state it left. */
  circuitChanged(name: string, state: CircuitState, from: CircuitState | undefined): void;
}

/** Options of {@link createCircuitBreaker}: a name, a preset, and any number over it. */
export interface CircuitBreakerOptions extends Partial<CircuitNumbers> {
  /** For metrics and errors: 1 to 64 of `[a-z0-9_.:-]` (`db_write`, `payments_api`). */
  readonly name: string;
  /** Default `balanced`. */
  readonly preset?: CircuitPreset;
  /**
   * Whether a rejection says the dependency is failing (default: every rejection). A query's own
   * mistake (a constraint violated, bad SQL) is no outage: return false for it.
   */
  readonly isFailure?: (err: unknown) => boolean;
  readonly observer?: CircuitObserver;
}

/**
 * What a breaker rejects with instead of calling: `code` `EOPENBREAKER` (open, or half-open with
 * its trial calls taken; `cause`: the failure that opened it) or `ETIMEDOUT` (the call took
 * longer than `timeoutMs`; it is not cancelled). `errorHandler` answers it 503 `DEPENDENCY_UNAVAILABLE` with `Retry-After`.
 */
export class DependencyUnavailableError extends Error {
  readonly code: 'EOPENBREAKER' | 'ETIMEDOUT';
  /** The breaker's name. */
  readonly dependency: string;
  /** When asking again can be answered: the rest of the open time (at least 1 s). */
  readonly retryAfterMs: number;
  constructor(dependency: string, code: 'EOPENBREAKER' | 'ETIMEDOUT', message: string, retryAfterMs: number, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DependencyUnavailableError';
    this.code = code;
    this.dependency = dependency;
    this.retryAfterMs = retryAfterMs;
  }
}

/** A breaker in front of one dependency. */
export interface CircuitBreaker {
  readonly name: string;
  readonly state: CircuitState;
  /** The numbers in force (the preset's, with the overrides). */
  readonly numbers: CircuitNumbers;
  /** Runs `call` through the breaker: refused at once while open, a failure when slower than `timeoutMs`. */
  run<T>(call: () => Promise<T>): Promise<T>;
  /** Stops its timer (a breaker left open reopens nothing after this). */
  close(): void;
}

const NAME = /^[a-z0-9_.:-]{1,64}$/;

/** The numbers of `options`: its preset's, each given one over it, checked. */
function numbersOf(options: CircuitBreakerOptions): CircuitNumbers {
  const preset = options.preset ?? 'balanced';
  const base = CIRCUIT_PRESETS[preset];
  if (base === undefined) throw new OptionsError('circuitBreaker', 'preset', '"conservative", "balanced" or "tolerant"', preset);
  const n = { ...base };
  for (const key of Object.keys(base) as (keyof CircuitNumbers)[]) {
    const v = options[key];
    if (v !== undefined) n[key] = positiveInteger('circuitBreaker', key, v);
  }
  if (n.errorThresholdPercentage > 100)
    throw new OptionsError('circuitBreaker', 'errorThresholdPercentage', 'a percentage from 1 to 100', n.errorThresholdPercentage);
  return Object.freeze(n);
}

/**
 * A circuit breaker for any async dependency (a query, an outbound call): it opens after
 * `failureThreshold` consecutive failures, or when more than `errorThresholdPercentage` of the
 * calls in the last `rollingWindowMs` failed (once there were `volumeThreshold` of them),
 * whichever comes first; a call slower than `timeoutMs` counts as failed (and is answered
 * `ETIMEDOUT` at that time). While open it refuses at once ({@link DependencyUnavailableError},
 * `EOPENBREAKER`); after `resetTimeoutMs` it lets `halfOpenCalls` trial calls through: the first
 * success closes it, a failure opens it again. The rate-limit store's breakers are opossum's,
 * tuned for one fast backend (see docs/breakers.md for why this one is not).
 */
export function createCircuitBreaker(options: CircuitBreakerOptions): CircuitBreaker {
  if (typeof options.name !== 'string' || !NAME.test(options.name))
    throw new OptionsError('circuitBreaker', 'name', `a match of ${NAME}`, options.name);
  const { name, observer } = options;
  const n = numbersOf(options);
  const isFailure = options.isFailure ?? (() => true);
  const bucketMs = n.rollingWindowMs / 10;
  /** The window, in 10 buckets: calls and failures per bucket, the newest last. */
  let buckets: { at: number; calls: number; failures: number }[] = [];
  let state: CircuitState = 'CLOSED';
  let consecutive = 0;
  let openedAt = 0;
  let trials = 0;
  let timer: NodeJS.Timeout | undefined;
  /** The failure that opened it (or the last one): a refusal's `cause`. */
  let lastFailure: unknown;
  observer?.circuitChanged(name, 'CLOSED', undefined);

  const moveTo = (next: CircuitState) => {
    const from = state;
    state = next;
    observer?.circuitChanged(name, next, from);
  };
  const open = () => {
    openedAt = performance.now();
    trials = 0;
    if (timer !== undefined) clearTimeout(timer);
    // Half-open when the open time is over, so the state (and its metric) says so even without calls.
    timer = setTimeout(() => {
      timer = undefined;
      if (state === 'OPEN') moveTo('HALF_OPEN');
    }, n.resetTimeoutMs);
    timer.unref();
    moveTo('OPEN');
  };
  const record = (failed: boolean) => {
    const now = performance.now();
    // Buckets are kept oldest first: drop those out of the window without copying the rest.
    while (buckets.length > 0 && (buckets[0] as { at: number }).at <= now - n.rollingWindowMs) buckets.shift();
    let last = buckets[buckets.length - 1];
    if (last === undefined || last.at <= now - bucketMs) {
      last = { at: now, calls: 0, failures: 0 };
      buckets.push(last);
    }
    last.calls++;
    if (failed) last.failures++;
  };
  const succeeded = () => {
    consecutive = 0;
    if (state === 'HALF_OPEN') {
      buckets = [];
      moveTo('CLOSED');
    } else record(false);
  };
  const failed = (err: unknown) => {
    lastFailure = err;
    if (state === 'HALF_OPEN') {
      open();
      return;
    }
    if (state !== 'CLOSED') return;
    consecutive++;
    record(true);
    let calls = 0;
    let failures = 0;
    for (const b of buckets) {
      calls += b.calls;
      failures += b.failures;
    }
    if (consecutive >= n.failureThreshold || (calls >= n.volumeThreshold && (failures / calls) * 100 > n.errorThresholdPercentage)) open();
  };
  const refusal = () =>
    new DependencyUnavailableError(
      name,
      'EOPENBREAKER',
      `${name}: circuit breaker open`,
      state === 'OPEN' ? Math.max(1000, Math.ceil(openedAt + n.resetTimeoutMs - performance.now())) : 1000,
      lastFailure === undefined ? undefined : { cause: lastFailure },
    );

  return {
    name,
    numbers: n,
    get state() {
      return state;
    },
    run<T>(call: () => Promise<T>): Promise<T> {
      if (state === 'OPEN') return Promise.reject(refusal());
      const trial = state === 'HALF_OPEN';
      if (trial) {
        if (trials >= n.halfOpenCalls) return Promise.reject(refusal());
        trials++;
      }
      return new Promise<T>((resolve, reject) => {
        let settled = false;
        const timeout = setTimeout(() => {
          settled = true;
          const late = new DependencyUnavailableError(name, 'ETIMEDOUT', `${name}: no answer within ${n.timeoutMs} ms`, 1000);
          failed(late);
          reject(late);
        }, n.timeoutMs);
        let started: Promise<T>;
        try {
          started = call();
        } catch (err) {
          started = Promise.reject(err);
        }
        started.then(
          (value) => {
            if (settled) return;
            settled = true;
            clearTimeout(timeout);
            succeeded();
            resolve(value);
          },
          (err: unknown) => {
            if (settled) return;
            settled = true;
            clearTimeout(timeout);
            // A call's own mistake says the dependency answered.
            if (isFailure(err)) failed(err);
            else succeeded();
            reject(err);
          },
        );
      });
    },
    close() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
