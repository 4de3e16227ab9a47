import type { Check } from '../../src';

const MS = 1000;

/** Checks as the limiter makes them, in ms and per second (the contract's numbers). */
export function tokenBucket(key: string, rps: number, burst: number, cost = 1): Check {
  return { key, algorithm: 'token_bucket', intervalUs: Math.round(1_000_000 / rps), burst, cost };
}
export function slidingWindow(key: string, limit: number, windowMs: number, cost = 1): Check {
  return { key, algorithm: 'sliding_window', windowUs: windowMs * MS, limit, cost };
}

export function quota(key: string, limit: number, period: number | 'month', cost = 1): Check {
  return { key, algorithm: 'quota', periodUs: period === 'month' ? 0 : period * MS, limit, cost };
}

let leaseCounter = 0;
/** A concurrency check with a fresh lease (as the limiter makes one per request). */
export function concurrency(key: string, limit: number, leaseMs: number, cost = 1): Check {
  return { key, algorithm: 'concurrency', leaseUs: leaseMs * MS, limit, cost, lease: `t${process.pid}.${++leaseCounter}` };
}

/** A sliding window counter check: fixed windows of `windowMs` aligned to the epoch, the previous one weighted by its overlap. */
export function windowCounter(key: string, limit: number, windowMs: number, cost = 1): Check {
  return { key, algorithm: 'sliding_window_counter', windowUs: windowMs * MS, limit, cost };
}
