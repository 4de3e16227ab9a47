import { performance } from 'node:perf_hooks';
import { overrideKey, penaltyKey } from './key-format';
import { quotaPeriodEnd, withNumbers } from './algorithms';
import { counterAdmit, counterExpiresAt, counterSettle, counterState, readCounter, type CounterState } from './window-counter';
import type { Check } from './types';
import type { Decision, RateLimitStore } from './store';

/** Options of {@link createMemoryStore}. */
export interface MemoryStoreOptions {
  /** How often expired buckets are dropped. Default {@link MEMORY_STORE_DEFAULTS.sweepIntervalMs}. */
  readonly sweepIntervalMs?: number;
  /** Clock in µs; tests may pass their own. Default: monotonic wall clock. */
  readonly now?: () => number;
}

/** Defaults of {@link createMemoryStore}. */
export const MEMORY_STORE_DEFAULTS = Object.freeze({ sweepIntervalMs: 10_000 });

interface Bucket {
  /** Token bucket: the TAT (µs). Quota: the count of the period. Sliding window: unused. */
  tat: number;
  /** Sliding window: admission times (µs), oldest first. */
  times: number[] | undefined;
  /** Concurrency: when each lease ends (µs), by lease id. */
  leases?: Map<string, number>;
  /** Sliding window counter: the fixed window's index, its count, the previous window's count. */
  counter?: CounterState;
  /** An override's numbers (a, b), at `<key>!o`. */
  override?: readonly [number, number];
  expiresAt: number;
}

const monotonicMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

/**
 * An in-process store with the semantics of the Redis store (same algorithms, same
 * all-or-nothing rule), for a single instance, development and tests. `decideSync` mirrors
 * DECIDE_SCRIPT (redis/scripts.ts) step for step on purpose: the store contract suite
 * (test/support/store-contract.ts) runs both and keeps them in step.
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): RateLimitStore {
  const now = options.now ?? monotonicMicros;
  const buckets = new Map<string, Bucket>();
  const sweep = setInterval(() => {
    const t = now();
    for (const [key, b] of buckets) if (b.expiresAt <= t) buckets.delete(key);
  }, options.sweepIntervalMs ?? MEMORY_STORE_DEFAULTS.sweepIntervalMs);
  sweep.unref();

  function live(key: string, t: number): Bucket | undefined {
    const b = buckets.get(key);
    if (b !== undefined && b.expiresAt <= t) {
      buckets.delete(key);
      return undefined;
    }
    return b;
  }

  function decideSync(given: readonly Check[], dry = false): Decision {
    const t = now();
    const n = given.length;
    const remBefore = new Array<number>(n);
    const resetBefore = new Array<number>(n);
    const remAfter = new Array<number>(n);
    const resetAfter = new Array<number>(n);
    const next = new Array<number>(n);
    let allowed = true;
    let retry = 0;
    let blocked = 0;
    // An overridable check takes its identity's own numbers, when it has some.
    const checks = given.some((c) => c.overridable === true)
      ? given.map((c) => {
          const ov = c.overridable === true ? live(overrideKey(c.key), t)?.override : undefined;
          return ov === undefined ? c : withNumbers(c, ov[0], ov[1]);
        })
      : given;
    for (let i = 0; i < n; i++) {
      const c = checks[i] as Check;
      const block = c.penalty === undefined ? undefined : live(penaltyKey(c.key), t);
      if (block?.tat === -1) {
        // Blocked by its penalty: refused whatever the bucket holds (Redis: the PTTL, in ms).
        const left = Math.max(1000, Math.ceil((block.expiresAt - t) / 1000) * 1000);
        allowed = false;
        blocked |= 1 << i;
        remBefore[i] = 0;
        resetBefore[i] = left;
        if (left > retry) retry = left;
        continue;
      }
      const b = live(c.key, t);
      if (c.algorithm === 'sliding_window') {
        const times = b?.times ?? [];
        let drop = 0;
        while (drop < times.length && (times[drop] as number) <= t - c.windowUs) drop++;
        if (drop > 0) times.splice(0, drop);
        const count = times.length;
        remBefore[i] = c.limit - count;
        resetBefore[i] = count > 0 ? (times[count - 1] as number) + c.windowUs - t : 0;
        if (count + c.cost > c.limit) {
          allowed = false;
          const wait = (times[count + c.cost - c.limit - 1] as number) + c.windowUs - t;
          if (wait > retry) retry = wait;
        } else {
          next[i] = count;
          remAfter[i] = c.limit - count - c.cost;
          resetAfter[i] = c.windowUs;
        }
      } else if (c.algorithm === 'concurrency') {
        // Members `<lease>#<j>` ending at a time, as the script's sorted set: ended leases are
        // dropped when the set is full (below the limit they change no decision).
        const leases = b?.leases;
        if (leases !== undefined && leases.size + c.cost > c.limit) {
          for (const [member, endsAt] of leases) if (endsAt <= t) leases.delete(member);
        }
        const ends = leases === undefined ? [] : [...leases.values()].sort((x, y) => x - y);
        const count = ends.length;
        remBefore[i] = c.limit - count;
        resetBefore[i] = count > 0 ? Math.max(0, (ends[count - 1] as number) - t) : 0;
        if (count + c.cost > c.limit) {
          allowed = false;
          const frees = ends[count + c.cost - c.limit - 1];
          const wait = Math.max(1, Math.min(1_000_000, frees === undefined ? Infinity : frees - t));
          if (wait > retry) retry = wait;
        } else {
          remAfter[i] = c.limit - count - c.cost;
          resetAfter[i] = c.leaseUs;
        }
      } else if (c.algorithm === 'sliding_window_counter') {
        const r = readCounter(b?.counter, t, c);
        remBefore[i] = r.remaining;
        resetBefore[i] = r.resetUs;
        remAfter[i] = r.remainingAfter;
        resetAfter[i] = r.resetAfterUs;
        if (r.wait > 0) allowed = false;
        if (r.wait > retry) retry = r.wait;
      } else if (c.algorithm === 'quota') {
        const end = quotaPeriodEnd(t, c.periodUs);
        const count = b?.tat ?? 0;
        remBefore[i] = c.limit - count;
        resetBefore[i] = end - t;
        if (count + c.cost > c.limit) {
          allowed = false;
          if (end - t > retry) retry = end - t;
        } else {
          next[i] = count + c.cost;
          remAfter[i] = c.limit - count - c.cost;
          resetAfter[i] = end - t;
        }
      } else {
        const interval = c.intervalUs;
        const tat = Math.max(b?.tat ?? t, t);
        const newTat = tat + interval * c.cost;
        const allowAt = newTat - interval * c.burst;
        remBefore[i] = Math.floor((t + interval * c.burst - tat) / interval);
        resetBefore[i] = tat - t;
        if (t < allowAt) {
          allowed = false;
          if (allowAt - t > retry) retry = allowAt - t;
        } else {
          next[i] = newTat;
          remAfter[i] = Math.floor((t + interval * c.burst - newTat) / interval);
          resetAfter[i] = newTat - t;
        }
      }
    }
    if (dry) {
      // peek: what is left before this decision; nothing charged, no strike.
      const seen = { allowed, retryAfterUs: allowed ? 0 : retry, remaining: remBefore, resetUs: resetBefore };
      return blocked === 0 ? seen : { ...seen, blocked };
    }
    if (!allowed) {
      // A refusal by a check with a penalty is a strike; enough within the window block.
      for (let i = 0; i < n; i++) {
        const c = checks[i] as Check;
        const pen = c.penalty;
        if (pen === undefined || (blocked & (1 << i)) !== 0 || (remBefore[i] as number) >= c.cost) continue;
        const key = penaltyKey(c.key);
        const p = live(key, t);
        const strikes = (p?.tat ?? 0) + 1;
        if (strikes >= pen.denials) {
          buckets.set(key, { tat: -1, times: undefined, expiresAt: t + pen.blockUs });
          blocked |= 1 << i;
          resetBefore[i] = pen.blockUs;
          if (pen.blockUs > retry) retry = pen.blockUs;
        } else buckets.set(key, { tat: strikes, times: undefined, expiresAt: p?.expiresAt ?? t + pen.windowUs });
      }
      const denial = { allowed, retryAfterUs: retry, remaining: remBefore, resetUs: resetBefore };
      return blocked === 0 ? denial : { ...denial, blocked };
    }
    for (let i = 0; i < n; i++) {
      const c = checks[i] as Check;
      if (c.algorithm === 'sliding_window') {
        const times = live(c.key, t)?.times ?? [];
        for (let j = 0; j < c.cost; j++) times.push(t);
        buckets.set(c.key, { tat: 0, times, expiresAt: t + c.windowUs });
      } else if (c.algorithm === 'concurrency') {
        const b = live(c.key, t);
        const leases = b?.leases ?? new Map<string, number>();
        for (let j = 1; j <= c.cost; j++) leases.set(`${c.lease}#${j}`, t + c.leaseUs);
        buckets.set(c.key, { tat: 0, times: undefined, leases, expiresAt: Math.max(b?.expiresAt ?? 0, t + c.leaseUs) });
      } else if (c.algorithm === 'sliding_window_counter') {
        const counter = counterAdmit(counterState(live(c.key, t)?.counter, t, c.windowUs), c.cost);
        buckets.set(c.key, { tat: 0, times: undefined, counter, expiresAt: counterExpiresAt(counter, c.windowUs) });
      } else if (c.algorithm === 'quota') {
        buckets.set(c.key, { tat: next[i] as number, times: undefined, expiresAt: quotaPeriodEnd(t, c.periodUs) });
      } else {
        const tat = next[i] as number;
        buckets.set(c.key, { tat, times: undefined, expiresAt: tat });
      }
    }
    return { allowed, retryAfterUs: 0, remaining: remAfter, resetUs: resetAfter, atUs: t };
  }

  return {
    name: 'memory',
    decide(checks) {
      try {
        return Promise.resolve(decideSync(checks));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    },
    setOverride(key, numbers, ttlMs) {
      const expiresAt = ttlMs === undefined ? Infinity : now() + ttlMs * 1000;
      const override = [Math.round(numbers.timeUs), Math.round(numbers.capacity)] as const;
      buckets.set(overrideKey(key), { tat: 0, times: undefined, override, expiresAt });
      return Promise.resolve();
    },
    clearOverride(key) {
      buckets.delete(overrideKey(key));
      return Promise.resolve();
    },
    release(checks) {
      for (const c of checks) {
        if (c.algorithm !== 'concurrency') continue;
        const leases = buckets.get(c.key)?.leases;
        if (leases === undefined) continue;
        for (let j = 1; j <= c.cost; j++) leases.delete(`${c.lease}#${j}`);
      }
      return Promise.resolve();
    },
    adjust(given, delta, atUs) {
      // The ADJUST script's arithmetic (redis/lua/settle.ts), on the same state.
      const t = now();
      const ov = given.overridable === true ? live(overrideKey(given.key), t)?.override : undefined;
      const c = ov === undefined ? given : withNumbers(given, ov[0], ov[1]);
      const b = live(c.key, t);
      if (c.algorithm === 'token_bucket') {
        const tat = Math.max(b?.tat ?? t, t) + c.intervalUs * delta;
        if (tat <= t) buckets.delete(c.key);
        else buckets.set(c.key, { tat, times: undefined, expiresAt: tat });
      } else if (c.algorithm === 'sliding_window') {
        const times = (b?.times ?? []).filter((x) => x > t - c.windowUs);
        for (let j = 0; j < delta; j++) times.push(t);
        for (let j = 0, at = times.indexOf(atUs); j < -delta && at !== -1; j++, at = times.indexOf(atUs)) times.splice(at, 1);
        if (times.length === 0) buckets.delete(c.key);
        else buckets.set(c.key, { tat: 0, times, expiresAt: delta > 0 ? t + c.windowUs : (b?.expiresAt ?? t) });
      } else if (c.algorithm === 'sliding_window_counter') {
        const counter = counterSettle(counterState(b?.counter, t, c.windowUs), c.windowUs, delta, atUs);
        if (counter[1] === 0 && counter[2] === 0) buckets.delete(c.key);
        else buckets.set(c.key, { tat: 0, times: undefined, counter, expiresAt: counterExpiresAt(counter, c.windowUs) });
      } else if (c.algorithm === 'quota') {
        const end = quotaPeriodEnd(t, c.periodUs);
        // A refund only within the admission's period: a new period starts from 0.
        const count =
          delta > 0 ? (b?.tat ?? 0) + delta : quotaPeriodEnd(atUs, c.periodUs) === end ? Math.max(0, (b?.tat ?? 0) + delta) : b?.tat;
        if (count === 0) buckets.delete(c.key);
        else if (count !== undefined) buckets.set(c.key, { tat: count, times: undefined, expiresAt: end });
      } else return Promise.reject(new TypeError('adjust(): a concurrency check has no cost to settle'));
      return Promise.resolve();
    },
    peek(checks) {
      try {
        return Promise.resolve(decideSync(checks, true));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    },
    reset(key) {
      buckets.delete(key);
      buckets.delete(penaltyKey(key));
      return Promise.resolve();
    },
    block(key, ms) {
      if (ms <= 0) buckets.delete(penaltyKey(key));
      else buckets.set(penaltyKey(key), { tat: -1, times: undefined, expiresAt: now() + ms * 1000 });
      return Promise.resolve();
    },
    close() {
      clearInterval(sweep);
      buckets.clear();
      return Promise.resolve();
    },
  };
}
