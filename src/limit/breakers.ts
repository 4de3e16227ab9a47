import CircuitBreaker from 'opossum';
import { LazyAbort } from '../internal/lazy-abort';
import type { BreakerOptions, BreakerState } from './options';
import type { Check } from './types';
import type { CallGuard, Decision, DecideOptions, RateLimitStore } from './store';

/**
 * A reply that says the store was used wrongly (a script call over keys in several Cluster hash
 * slots): a bug, not an outage. It is never answered by a fail mode, and no breaker counts it.
 */
export function isStoreMisuse(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('CROSSSLOT');
}

function deadlineError(ms: number): Error {
  return Object.assign(new Error(`the rate limit store did not answer within ${ms} ms`), { code: 'ETIMEDOUT' });
}

/**
 * A decision's give-up, as {@link DecideOptions}: `abandoned()` answers without making the
 * signal. A method, not a bound function: an arrow property made each decision 0.5 µs slower
 * (`npm run bench:decision`).
 */
class Abandonment extends LazyAbort implements DecideOptions {
  abandoned(): boolean {
    return this.aborted;
  }
}

/** The limiter's backend calls: each decision within the deadline, through its domain's breaker. */
export interface BreakerPool {
  decide(checks: readonly Check[]): Promise<Decision>;
  /** The worst state of the pool's breakers. */
  readonly state: BreakerState;
  /** The failure domain a failed decision went to ('' when one server, or several domains). */
  domainOf(err: unknown): string;
  close(): void;
}

export interface BreakerPoolOptions {
  readonly store: RateLimitStore;
  readonly deadlineMs: number;
  readonly breaker: Required<BreakerOptions>;
  /** Told whenever the worst state may have changed. */
  readonly onStateChange?: (state: BreakerState) => void;
  /** Told when one domain's breaker changes state; `undefined` when the domain is forgotten. */
  readonly onDomainState?: (domain: string, state: BreakerState | undefined) => void;
}

/** The options rampart gives opossum (its own type stays out of the published declarations). */
export interface OpossumOptions {
  readonly timeout: number;
  readonly errorThresholdPercentage: number;
  readonly volumeThreshold: number;
  readonly resetTimeout: number;
  readonly rollingCountTimeout: number;
  readonly rollingCountBuckets: number;
  readonly rollingPercentilesEnabled: boolean;
  readonly enableSnapshots: boolean;
  readonly errorFilter: (err: unknown) => boolean;
}

/**
 * The options of each opossum breaker. Its latency percentiles and periodic snapshots are off:
 * nothing reads them, and with them on, every bucket interval (a tenth of the window, 1 s by
 * default) a timer concatenated and sorted the latency of every call in the window (60,000
 * numbers at 6,000 decisions/s), stalling the event loop for milliseconds each time.
 */
export function breakerOptions(deadlineMs: number, b: Required<BreakerOptions>): OpossumOptions {
  return {
    timeout: deadlineMs,
    errorThresholdPercentage: b.errorThresholdPercentage,
    volumeThreshold: b.volumeThreshold,
    resetTimeout: b.resetTimeoutMs,
    rollingCountTimeout: b.rollingWindowMs,
    rollingCountBuckets: 10,
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
    // A misuse is a bug in the caller: it says nothing of the backend's health.
    errorFilter: isStoreMisuse,
  };
}

const SEVERITY: Readonly<Record<BreakerState, number>> = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2 };
const stateOf = (br: CircuitBreaker): BreakerState => (br.opened ? 'OPEN' : br.halfOpen ? 'HALF_OPEN' : 'CLOSED');

export function createBreakerPool(options: BreakerPoolOptions): BreakerPool {
  const { store, deadlineMs, breaker: b } = options;
  // One breaker per failure domain of the store (one, unless the store says otherwise). A
  // breaker runs whatever backend call it is given, so a decision over several domains charges
  // each of its calls to the breaker of the domain it went to.
  type Call = () => Promise<unknown>;
  type Breaker = CircuitBreaker<[Call], unknown>;
  const breakers = new Map<string, Breaker>();
  const MAX_BREAKERS = 64;
  const worstState = (): BreakerState => {
    let worst: BreakerState = 'CLOSED';
    for (const br of breakers.values()) {
      const s = stateOf(br);
      if (SEVERITY[s] > SEVERITY[worst]) worst = s;
    }
    return worst;
  };
  const updateGauge = () => options.onStateChange?.(worstState());
  const onDomainState = options.onDomainState;
  /** The domain of each failed single-domain decision's error (errors are objects opossum or the store made). */
  const failedIn = new WeakMap<object, string>();
  const tag = (err: unknown, domain: string) => {
    if (domain !== '' && typeof err === 'object' && err !== null) failedIn.set(err, domain);
  };
  function newBreaker(domain: string): Breaker {
    const br = new CircuitBreaker((call: Call) => call(), breakerOptions(deadlineMs, b));
    const changed = () => {
      onDomainState?.(domain, stateOf(br));
      updateGauge();
    };
    br.on('close', changed);
    br.on('halfOpen', changed);
    br.on('open', changed);
    onDomainState?.(domain, 'CLOSED');
    return br;
  }
  const partition = store.partition?.bind(store);
  const single = partition === undefined ? newBreaker('') : undefined;
  if (single !== undefined) breakers.set('', single);
  function breakerOf(domain: string): Breaker {
    let br = breakers.get(domain);
    if (br === undefined) {
      if (breakers.size >= MAX_BREAKERS) {
        // Domains come and go with failovers: forget the oldest.
        const [oldKey, old] = breakers.entries().next().value as [string, Breaker];
        old.shutdown();
        breakers.delete(oldKey);
        onDomainState?.(oldKey, undefined);
        updateGauge();
      }
      br = newBreaker(domain);
      breakers.set(domain, br);
    }
    return br;
  }
  /** Each call of a decision over several domains, through its own domain's breaker; a failure is tagged with its domain. */
  const guard: CallGuard = <T>(key: string, call: () => Promise<T>) => {
    if (single !== undefined) return single.fire(call) as Promise<T>;
    const domain = (partition as (key: string) => string)(key);
    return (breakerOf(domain).fire(call) as Promise<T>).catch((err: unknown) => {
      tag(err, domain);
      throw err;
    });
  };
  /** The failure domain of a decision whose checks all live in one; else undefined. */
  function oneDomain(checks: readonly Check[]): string | undefined {
    if (single !== undefined) return '';
    const domain = (partition as (key: string) => string)((checks[0] as Check).key);
    for (let i = 1; i < checks.length; i++)
      if ((partition as (key: string) => string)((checks[i] as Check).key) !== domain) return undefined;
    return domain;
  }
  /**
   * One decision: through its domain's breaker (whose timeout is the deadline), or, over several
   * domains, each store call through its own breaker and the whole within the deadline.
   */
  function decide(checks: readonly Check[]): Promise<Decision> {
    const domain = oneDomain(checks);
    if (domain !== undefined) {
      const breaker = single ?? breakerOf(domain);
      // The store is told when the breaker gives up on the call (the deadline), so that an
      // admission arriving after it is given back: the request was answered without it.
      const abandon = new Abandonment();
      return (breaker.fire(() => store.decide(checks, abandon)) as Promise<Decision>).catch((err: unknown) => {
        abandon.abort(err);
        tag(err, domain);
        throw err;
      });
    }
    // At the deadline the store is told first (it stops, gives back, or answers a denial it
    // already has); the decision fails one turn later if it has not answered by then.
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = deadlineError(deadlineMs);
        controller.abort(err);
        setImmediate(() => reject(err));
      }, deadlineMs);
    });
    return Promise.race([store.decide(checks, { guard, signal: controller.signal }), late]).finally(() => clearTimeout(timer));
  }
  // A backend that reconnects is tried again at once instead of after the breaker's timeout:
  // the breakers of the domain that came back, or all of them.
  const offRecover = store.onRecover?.((domain?: string) => {
    for (const [d, br] of breakers) if ((domain === undefined || d === domain) && (br.opened || br.halfOpen)) br.close();
  });
  // A domain that serves nothing any more (a failed master whose replica took over) gets no
  // call that could close its breaker: forget it, so the breaker state speaks of live domains.
  const offTopology = store.onTopology?.((live) => {
    let changed = false;
    for (const [d, br] of breakers) {
      if (d === '' || live.has(d)) continue;
      br.shutdown();
      breakers.delete(d);
      onDomainState?.(d, undefined);
      changed = true;
    }
    if (changed) updateGauge();
  });

  return {
    decide,
    get state() {
      return worstState();
    },
    domainOf(err) {
      return typeof err === 'object' && err !== null ? (failedIn.get(err) ?? '') : '';
    },
    close() {
      offRecover?.();
      offTopology?.();
      for (const [d, br] of breakers) {
        br.shutdown();
        onDomainState?.(d, undefined);
      }
      breakers.clear();
    },
  };
}
