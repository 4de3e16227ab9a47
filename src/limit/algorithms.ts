import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { invalid, positive, RATE_LIMITER_DEFAULTS, refuse, type SurfaceOptions } from './options';
import type {
  Check,
  ConcurrencyCheck,
  ConcurrencyPolicy,
  PolicyOptions,
  QuotaCheck,
  QuotaPolicy,
  SlidingWindowCheck,
  SlidingWindowCounterCheck,
  SlidingWindowCounterPolicy,
  SlidingWindowPolicy,
  TierNumbers,
  TokenBucketCheck,
  TokenBucketPolicy,
} from './types';

/**
 * One row per algorithm: the fields a policies document may give it, what a tier or an override
 * may set, how a policy's numbers become a check, and which two of a check's numbers are its
 * time and capacity (the pair an override replaces and the Redis scripts receive as `a`, `b`).
 * The stores hold the rest: a `read`/`commit` pair in redis/lua/decide.ts (and a settle in
 * redis/lua/settle.ts), a branch of the memory store, and a case of the store contract suite.
 */
export interface AlgorithmDefinition<P extends PolicyOptions = PolicyOptions, C extends Check = Check> {
  /**
   * The policies document's fields of its numbers, each with its bounds (policy-set.ts adds
   * `algorithm`, the fields every policy has, and `tiers`: the {@link tierFields} of these, optional).
   */
  readonly documentFields: z.ZodRawShape;
  /** A document's checks across fields (each field's own are in {@link documentFields}): a problem, or none. */
  readonly documentRule?: (p: Readonly<Record<string, unknown>>) => { readonly field: string; readonly problem: string } | undefined;
  /** The number a cost must fit under: the bucket. */
  readonly capacityField: 'burst' | 'limit';
  /** The numbers of a policy a tier (or an override) may set. */
  readonly tierFields: readonly (keyof TierNumbers)[];
  /** Checks the policy's numbers (a mistake throws) and makes its check. */
  compile(p: P, context: CompileContext): CompiledNumbers<C>;
  /** µs per token, the window, the period, the lease. */
  time(c: C): number;
  /** The burst or the limit: how many requests a full bucket admits. */
  capacity(c: C): number;
  /** `c` with another time and capacity (an identity's override). */
  withNumbers(c: C, time: number, capacity: number): C;
}

/** What compiling a policy's numbers knows besides the policy. */
export interface CompileContext {
  /** The policy's name, for errors. */
  readonly name: string;
  /** How errors name it: `policy "x"`, or `policy "x" tier "pro"`. */
  readonly label: string;
  /** The numbers of its tier, already merged into the policy. */
  readonly tier: TierNumbers | undefined;
  /** A surface that may override a token bucket's numbers. */
  readonly surface: SurfaceOptions | undefined;
  /** The store can give leases back (concurrency needs it). */
  readonly canRelease: boolean;
}

export interface CompiledNumbers<C extends Check> {
  readonly check: (key: string, cost: number) => C;
  readonly capacity: number;
  /** The RateLimit header's window (s). */
  readonly windowSeconds: number;
  /** The numbers are the surface's own: the bucket gets its own key (`policy@surface`). */
  readonly surfaceOwn?: boolean;
}

export const MICROS = 1_000_000;
const DAY_US = 86_400 * MICROS;

/** Lease ids: this process's random prefix and a counter (base 36). */
const LEASE_PREFIX = randomBytes(6).toString('base64url');
let leaseCount = 0;
const nextLease = () => `${LEASE_PREFIX}${(++leaseCount).toString(36)}`;

const QUOTA_PERIODS = { hour: 3_600 * MICROS, day: DAY_US, month: 0 } as const;

/** A quota's period in µs (0: the calendar month) from exactly one of `period` and `periodSeconds`. */
function quotaPeriodUs(name: string, period: unknown, periodSeconds: unknown): number {
  if ((period === undefined) === (periodSeconds === undefined)) {
    refuse(`policy "${name}": period`, 'exactly one of period ("hour", "day", "month") and periodSeconds', { period, periodSeconds });
  }
  if (period !== undefined) {
    if (typeof period !== 'string' || !Object.hasOwn(QUOTA_PERIODS, period))
      refuse(`policy "${name}": period`, '"hour", "day" or "month"', period);
    return QUOTA_PERIODS[period as keyof typeof QUOTA_PERIODS];
  }
  if (typeof periodSeconds !== 'number' || !Number.isInteger(periodSeconds) || periodSeconds < 1 || periodSeconds > 366 * 86_400) {
    refuse(`policy "${name}": periodSeconds`, 'a whole number of seconds from 1 to 31622400 (366 days)', periodSeconds);
  }
  return periodSeconds * MICROS;
}

/**
 * When the period holding `nowUs` (µs since the Unix epoch) ends, in µs: the next multiple of
 * `periodUs`, or, for `periodUs` 0, the first instant of the next UTC calendar month. The Redis
 * scripts compute the same (`period_end`); the contract suite keeps them in step.
 */
export function quotaPeriodEnd(nowUs: number, periodUs: number): number {
  if (periodUs > 0) return (Math.floor(nowUs / periodUs) + 1) * periodUs;
  const d = new Date(Math.floor(nowUs / DAY_US) * 86_400_000);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) * 1000;
}

/** A token bucket (GCRA): one token every `intervalUs`, at most `burst` stored. */
const tokenBucket: AlgorithmDefinition<TokenBucketPolicy, TokenBucketCheck> = {
  documentFields: {
    rps: z.number().positive().max(1_000_000),
    burst: z.number().int().positive().max(1_000_000_000),
  },
  capacityField: 'burst',
  tierFields: ['rps', 'burst'],
  compile(p, { label, tier, surface }) {
    const rps = positive(tier?.rps ?? surface?.rateLimitRps ?? p.rps, `${label}: rps`, false);
    const burst = positive(tier?.burst ?? surface?.rateLimitBurst ?? p.burst, `${label}: burst`, true);
    const intervalUs = Math.max(1, Math.round(MICROS / rps));
    return {
      check: (key, cost) => ({ key, cost, algorithm: 'token_bucket', intervalUs, burst }),
      capacity: burst,
      windowSeconds: Math.max(1, Math.ceil((burst * intervalUs) / MICROS)),
      surfaceOwn: surface?.rateLimitRps !== undefined || surface?.rateLimitBurst !== undefined,
    };
  },
  time: (c) => c.intervalUs,
  capacity: (c) => c.burst,
  withNumbers: (c, intervalUs, burst) => ({ ...c, intervalUs, burst }),
};

/**
 * The two sliding windows share their numbers, `limit` requests in `windowSeconds`: the exact one
 * (a sorted set of admissions) and the counter (two fixed windows' counts, window-counter.ts).
 * `hard`: the counter's bounds in code as in a document (its packed counts, its window index).
 */
function slidingRow<P extends SlidingWindowPolicy | SlidingWindowCounterPolicy, C extends SlidingWindowCheck | SlidingWindowCounterCheck>(
  algorithm: C['algorithm'],
  documentMax: number,
  hard?: { readonly maxLimit: number; readonly minWindowSeconds: number },
): AlgorithmDefinition<P, C> {
  return {
    documentFields: {
      limit: z.number().int().positive().max(documentMax),
      windowSeconds: (hard === undefined ? z.number().positive() : z.number().min(hard.minWindowSeconds)).max(31 * 86_400),
    },
    capacityField: 'limit',
    tierFields: ['limit', 'windowSeconds'],
    compile(p, { label }) {
      const limit = positive(p.limit, `${label}: limit`, true);
      if (hard !== undefined && limit > hard.maxLimit) refuse(`${label}: limit`, `at most ${hard.maxLimit} for a ${algorithm}`, limit);
      const windowSeconds = positive(p.windowSeconds, `${label}: windowSeconds`, false);
      if (hard !== undefined && windowSeconds < hard.minWindowSeconds)
        refuse(`${label}: windowSeconds`, `at least ${hard.minWindowSeconds} (1 ms) for a ${algorithm}`, windowSeconds);
      const windowUs = Math.max(1, Math.round(windowSeconds * MICROS));
      return {
        check: (key, cost) => ({ key, cost, algorithm, windowUs, limit }) as C,
        capacity: limit,
        windowSeconds: Math.ceil(windowSeconds),
      };
    },
    time: (c) => c.windowUs,
    capacity: (c) => c.limit,
    withNumbers: (c, windowUs, limit) => ({ ...c, windowUs, limit }),
  };
}

/** An exact sliding window: at most `limit` admissions in any `windowUs`. */
const slidingWindow = slidingRow<SlidingWindowPolicy, SlidingWindowCheck>('sliding_window', 100_000);

/** A sliding window counter: two fixed windows' counts, the previous one weighted by its overlap. */
const slidingWindowCounter = slidingRow<SlidingWindowCounterPolicy, SlidingWindowCounterCheck>('sliding_window_counter', 10_000_000, {
  maxLimit: 10_000_000,
  minWindowSeconds: 0.001,
});

/** A quota: at most `limit` per period (a UTC calendar month when `periodUs` is 0). */
const quota: AlgorithmDefinition<QuotaPolicy, QuotaCheck> = {
  documentFields: {
    limit: z.number().int().positive().max(1_000_000_000),
    period: z.enum(['hour', 'day', 'month']).optional(),
    periodSeconds: z
      .number()
      .int()
      .positive()
      .max(366 * 86_400)
      .optional(),
  },
  documentRule: (p) =>
    (p['period'] === undefined) === (p['periodSeconds'] === undefined)
      ? { field: 'period', problem: 'exactly one of period ("hour", "day", "month") and periodSeconds' }
      : undefined,
  capacityField: 'limit',
  tierFields: ['limit'],
  compile(p, { name, label }) {
    const limit = positive(p.limit, `${label}: limit`, true);
    const periodUs = quotaPeriodUs(name, p.period, p.periodSeconds);
    return {
      check: (key, cost) => ({ key, cost, algorithm: 'quota', periodUs, limit }),
      capacity: limit,
      // The header's window: the period (a month counts as 31 days); its reset says when it renews.
      windowSeconds: periodUs === 0 ? 31 * 86_400 : periodUs / MICROS,
    };
  },
  time: (c) => c.periodUs,
  capacity: (c) => c.limit,
  withNumbers: (c, periodUs, limit) => ({ ...c, periodUs, limit }),
};

/** A concurrency limit: at most `limit` leases held at once, each at most `leaseUs`. */
const concurrency: AlgorithmDefinition<ConcurrencyPolicy, ConcurrencyCheck> = {
  documentFields: {
    limit: z.number().int().positive().max(100_000),
    leaseSeconds: z.number().positive().max(86_400).optional(),
  },
  capacityField: 'limit',
  tierFields: ['limit'],
  compile(p, { name, label, canRelease }) {
    if (!canRelease) invalid('policies', `policy "${name}": a concurrency policy needs a store with release()`);
    const limit = positive(p.limit, `${label}: limit`, true);
    const leaseSeconds = positive(p.leaseSeconds ?? RATE_LIMITER_DEFAULTS.leaseSeconds, `${label}: leaseSeconds`, false);
    const leaseUs = Math.round(leaseSeconds * MICROS);
    return {
      // Each request's own lease: unique across processes (a random prefix) and requests.
      check: (key, cost) => ({ key, cost, algorithm: 'concurrency', leaseUs, limit, lease: nextLease() }),
      capacity: limit,
      // The header's window: the lease, the longest a slot is held.
      windowSeconds: Math.ceil(leaseSeconds),
    };
  },
  time: (c) => c.leaseUs,
  capacity: (c) => c.limit,
  withNumbers: (c, leaseUs, limit) => ({ ...c, leaseUs, limit }),
};

/** The algorithms, by the name a policy gives. */
export const ALGORITHMS: {
  readonly [A in PolicyOptions['algorithm']]: AlgorithmDefinition<
    Extract<PolicyOptions, { algorithm: A }>,
    Extract<Check, { algorithm: A }>
  >;
} = {
  token_bucket: tokenBucket,
  sliding_window: slidingWindow,
  sliding_window_counter: slidingWindowCounter,
  quota,
  concurrency,
};

/** The definition of `name`, or `undefined` for a name that is none. */
export function algorithmOf(name: unknown): AlgorithmDefinition | undefined {
  return typeof name === 'string' && Object.hasOwn(ALGORITHMS, name)
    ? (ALGORITHMS[name as keyof typeof ALGORITHMS] as AlgorithmDefinition)
    : undefined;
}

const definitionOf = (c: Check) => ALGORITHMS[c.algorithm] as AlgorithmDefinition;
/** How many requests a full bucket admits: the burst, or the window's or quota's limit. */
export const capacityOf = (c: Check): number => definitionOf(c).capacity(c);
/** A check's time (µs): per token, the window, the period, the lease. With {@link capacityOf}, the numbers an override replaces. */
export const timeOf = (c: Check): number => definitionOf(c).time(c);
/** `c` with other numbers: `a` its {@link timeOf}, `b` its {@link capacityOf}. */
export const withNumbers = (c: Check, a: number, b: number): Check => definitionOf(c).withNumbers(c, a, b);
