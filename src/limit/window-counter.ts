import type { SlidingWindowCounterCheck } from './types';

/**
 * The sliding window counter's arithmetic, shared by the memory store and mirrored by the Redis
 * scripts (COUNTER_LUA in redis/lua/shared.ts; the store contract keeps the two in step): fixed
 * windows of `windowUs` aligned to multiples of it since the Unix epoch, this window's count and
 * the previous one's weighted by the part of it the sliding window still covers.
 */

/**
 * The most a count holds (2^24 - 1; a charge past it is held there): the Redis scripts pack the
 * window and the two counts into one integer below 2^52.
 */
export const COUNTER_MAX = 2 ** 24 - 1;
/**
 * A state knows its window's index modulo this: a state lives at most three windows of 1 ms or
 * more, so only its own two indexes are ever met, while a window length changed on a key (a tier,
 * an override, new policies) reads a state of the old windows as this or the previous window's
 * only when the indexes agree modulo 16 (the memory store compares the same way).
 */
export const COUNTER_WINDOWS = 16;

/** The fixed window's index, its count, the previous window's count. */
export type CounterState = readonly [window: number, current: number, previous: number];

/** The state at `nowUs` of what was `stored` (the previous window's count is 0 when it is older). */
export function counterState(stored: CounterState | undefined, nowUs: number, windowUs: number): CounterState {
  const k = Math.floor(nowUs / windowUs);
  if (stored === undefined) return [k, 0, 0];
  const at = stored[0] % COUNTER_WINDOWS;
  if (at === k % COUNTER_WINDOWS) return [k, stored[1], stored[2]];
  return [k, 0, at === (k - 1) % COUNTER_WINDOWS ? stored[1] : 0];
}

/** The estimate of the sliding window's count: the previous window weighted by the part still covered, plus the current. */
export const counterEstimate = (nowUs: number, windowUs: number, [k, current, previous]: CounterState): number =>
  (previous * (windowUs - (nowUs - k * windowUs))) / windowUs + current;

/**
 * How long until `cost` more fits under `limit` (µs, at least 1): later in this window as the
 * previous one's weight falls, or in the next one; a whole window for a cost above the limit.
 */
export function counterWait(nowUs: number, windowUs: number, [k, current, previous]: CounterState, limit: number, cost: number): number {
  if (cost > limit) return windowUs;
  const start = k * windowUs;
  const room = limit - current - cost;
  // This window: previous x (w - e) / w <= room once e >= w - room x w / previous.
  if (room >= 0 && previous > 0) return Math.max(1, Math.ceil(windowUs - (room * windowUs) / previous) - (nowUs - start));
  // The next: the current count becomes the previous one.
  const next = current > 0 ? Math.max(0, Math.ceil(windowUs - ((limit - cost) * windowUs) / current)) : 0;
  return Math.max(1, start + windowUs + next - nowUs);
}

/** What a decision reads of a counter: before the request, and after it when it fits (`wait` 0). */
export interface CounterRead {
  readonly state: CounterState;
  readonly remaining: number;
  readonly resetUs: number;
  readonly wait: number;
  readonly remainingAfter: number;
  readonly resetAfterUs: number;
}

export function readCounter(stored: CounterState | undefined, nowUs: number, c: SlidingWindowCounterCheck): CounterRead {
  const w = c.windowUs;
  const state = counterState(stored, nowUs, w);
  const [k, current, previous] = state;
  const estimate = counterEstimate(nowUs, w, state);
  const fits = estimate + c.cost <= c.limit;
  return {
    state,
    remaining: Math.floor(c.limit - estimate),
    // Full again once this window's count has left the next one too.
    resetUs: current > 0 ? (k + 2) * w - nowUs : previous > 0 ? (k + 1) * w - nowUs : 0,
    wait: fits ? 0 : counterWait(nowUs, w, state, c.limit, c.cost),
    remainingAfter: Math.floor(c.limit - estimate - c.cost),
    resetAfterUs: (k + 2) * w - nowUs,
  };
}

/** `state` with `cost` more in its window. */
export const counterAdmit = ([k, current, previous]: CounterState, cost: number): CounterState => [
  k,
  Math.min(COUNTER_MAX, current + cost),
  previous,
];

/** `state` settled by `delta` for an admission at `atUs`: a charge in this window, a refund in the admission's, never below 0. */
export function counterSettle(state: CounterState, windowUs: number, delta: number, atUs: number): CounterState {
  if (delta > 0) return counterAdmit(state, delta);
  const [k, current, previous] = state;
  const at = Math.floor(atUs / windowUs);
  if (at === k) return [k, Math.max(0, current + delta), previous];
  if (at === k - 1) return [k, current, Math.max(0, previous + delta)];
  return state;
}

/** When a state stops mattering: the end of the window after its own. */
export const counterExpiresAt = (state: CounterState, windowUs: number): number => (state[0] + 2) * windowUs;
