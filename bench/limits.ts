// What every limiter of the comparison is configured with, in one place.

export type AppName = 'bare' | 'erl' | 'rlf' | 'rampart';
export type Scenario = 'allow' | 'flood';

export const APPS: readonly AppName[] = ['bare', 'erl', 'rlf', 'rampart'];

export const APP_LABELS: Readonly<Record<AppName, string>> = {
  bare: 'bare Express',
  erl: 'express-rate-limit + rate-limit-redis',
  rlf: 'rate-limiter-flexible (RateLimiterRedis)',
  rampart: 'rampart token bucket (Redis)',
};

/**
 * `allow`: so high that every request is admitted. `flood`: 100 per minute on one key, so almost
 * every request is denied. rampart's bucket: burst = amount, refilled over the window.
 */
export const LIMITS: Readonly<Record<Scenario, { amount: number; windowSeconds: number }>> = {
  allow: { amount: 1_000_000_000, windowSeconds: 3600 },
  flood: { amount: 100, windowSeconds: 60 },
};

/**
 * Key prefixes. express-rate-limit keeps its default `rl:`; rampart's keys are
 * `<prefix>:<policy>:{<identity>}`, here with prefix `r` and policy `p`.
 */
export const PREFIXES = { erl: 'rl:', rlf: 'rlflx', rampart: 'r' } as const;

/** Distinct client keys per HTTP run, each 8 characters. */
export const CLIENT_KEYS = 10_000;
export function clientKey(i: number): string {
  return `c${String(i % CLIENT_KEYS).padStart(7, '0')}`;
}

/** rampart's store on another client than createRedisClient's ioredis 6 (the same token bucket as the `rampart` row). */
export const CLIENT_ROWS = ['rampart-ioredis5', 'rampart-iovalkey', 'rampart-node-redis6', 'rampart-node-redis5'] as const;
export type ClientRow = (typeof CLIENT_ROWS)[number];
