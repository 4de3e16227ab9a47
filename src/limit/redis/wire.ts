import { overrideKey, penaltyKey } from '../key-format';
import { capacityOf, timeOf } from '../algorithms';
import type { Check } from '../types';
import type { Decision, OverrideNumbers } from '../store';

/**
 * The wire format of the Redis scripts (scripts.ts): the only TypeScript that knows their KEYS and
 * ARGV layout and the shape of their replies. The scripts' headers describe the same layout from
 * the other side; the kinds and flags below are written into the scripts' text, so the two sides
 * cannot drift.
 */

/** A check's algorithm as the scripts number it. */
export const KIND = { token_bucket: 1, sliding_window: 2, quota: 3, concurrency: 4, sliding_window_counter: 5 } as const;
/** Added to a shape's kind: the shape has a penalty (3 more numbers: denials, window, block). */
export const WITH_PENALTY = 8;
/** Added to a shape's kind: the check is overridable (its override's key follows its keys). */
export const OVERRIDABLE = 16;
/** A penalty key's value while its identity is blocked (it holds the strikes, from 1, otherwise). */
export const BLOCKED = -1;
/**
 * A check's remaining, in a decision's reply, when its penalty's block refused it: a number no
 * remaining can be (a debt after a settle is a small negative one, -1 included).
 */
export const BLOCKED_REMAINING = -(2 ** 52);

/** A script call: how many of `args` are keys (they come first), then the ARGV. */
export interface ScriptCall {
  readonly numKeys: number;
  readonly args: (string | number)[];
}

/**
 * The 1-based index of `c`'s shape in `shapes`, added if new: (kind, a, b, cost), and with a
 * penalty (kind + 8, ..., denials, window, block). `starts` holds where each shape begins.
 */
function shapeIndex(shapes: number[], starts: number[], c: Check): number {
  const pen = c.penalty;
  const kind = KIND[c.algorithm] + (pen === undefined ? 0 : WITH_PENALTY) + (c.overridable === true ? OVERRIDABLE : 0);
  const a = timeOf(c);
  const b = capacityOf(c);
  // A call holds a handful of distinct policies: a linear scan allocates nothing.
  for (let j = 0; j < starts.length; j++) {
    const o = starts[j] as number;
    if (shapes[o] !== kind || shapes[o + 1] !== a || shapes[o + 2] !== b || shapes[o + 3] !== c.cost) continue;
    if (pen === undefined || (shapes[o + 4] === pen.denials && shapes[o + 5] === pen.windowUs && shapes[o + 6] === pen.blockUs))
      return j + 1;
  }
  starts.push(shapes.length);
  shapes.push(kind, a, b, c.cost);
  if (pen !== undefined) shapes.push(pen.denials, pen.windowUs, pen.blockUs);
  return starts.length;
}

/**
 * The DECIDE script's call for `decisions` (each one request's checks). Each distinct shape
 * (kind, a, b, cost) goes once and a check names it by index, so a single-policy decision costs
 * its key and one small number.
 */
export function encodeDecide(decisions: readonly { readonly checks: readonly Check[] }[]): ScriptCall {
  const args: (string | number)[] = [];
  const shapes: number[] = [];
  const starts: number[] = [];
  const refs: number[] = [];
  const leases: string[] = [];
  for (const { checks } of decisions) {
    const n = checks.length;
    if (n > 1) refs.push(-n);
    for (const c of checks) {
      args.push(c.key);
      if (c.penalty !== undefined) args.push(penaltyKey(c.key));
      if (c.overridable === true) args.push(overrideKey(c.key));
      refs.push(shapeIndex(shapes, starts, c));
      if (c.algorithm === 'concurrency') leases.push(c.lease);
    }
  }
  const numKeys = args.length;
  args.push(decisions.length, starts.length, ...shapes, leases.length, ...leases, ...refs);
  return { numKeys, args };
}

/** A DECIDE reply: the script's clock (µs; the admission time of what it admitted) and each decision. */
export interface DecideReply {
  readonly atUs: number;
  readonly decisions: Decision[];
}

/** The decisions in a DECIDE reply to {@link encodeDecide}`(decisions)`; throws on a reply of another shape. */
export function parseDecide(reply: unknown, decisions: readonly { readonly checks: readonly Check[] }[]): DecideReply {
  const expected = decisions.reduce((sum, p) => sum + 1 + 2 * p.checks.length, 1);
  if (!Array.isArray(reply) || reply.length !== expected) {
    throw new Error(`unexpected reply from the rate limit script: ${JSON.stringify(reply)?.slice(0, 200)}`);
  }
  const out = new Array<Decision>(decisions.length);
  const atUs = Number(reply[0]);
  let r = 1;
  for (let d = 0; d < decisions.length; d++) {
    const n = (decisions[d] as { checks: readonly Check[] }).checks.length;
    const remaining = new Array<number>(n);
    const resetUs = new Array<number>(n);
    let blocked = 0;
    for (let i = 0; i < n; i++) {
      const left = Number(reply[r + 1 + 2 * i]);
      if (left === BLOCKED_REMAINING) blocked |= 1 << i;
      remaining[i] = left === BLOCKED_REMAINING ? 0 : left;
      resetUs[i] = Number(reply[r + 2 + 2 * i]);
    }
    const retryAfterUs = Number(reply[r]);
    out[d] =
      blocked === 0
        ? { allowed: retryAfterUs === 0, retryAfterUs, remaining, resetUs, atUs }
        : { allowed: false, retryAfterUs, remaining, resetUs, blocked };
    r += 1 + 2 * n;
  }
  return { atUs, decisions: out };
}

/** The ADJUST script's call: settle `check`, admitted at `atUs`, by `delta`. */
export function encodeAdjust(check: Check, delta: number, atUs: number): ScriptCall {
  const kind = KIND[check.algorithm] + (check.overridable === true ? OVERRIDABLE : 0);
  const keys = check.overridable === true ? [check.key, overrideKey(check.key)] : [check.key];
  return { numKeys: keys.length, args: [...keys, kind, timeOf(check), capacityOf(check), delta, atUs] };
}

/** The SETTLE script's call: give back a step admitted at `atUs`, or only read (`atUs` -1). */
export function encodeSettle(checks: readonly Check[], atUs: number): ScriptCall {
  const args: (string | number)[] = [];
  for (const c of checks) {
    args.push(c.key);
    if (c.overridable === true) args.push(overrideKey(c.key));
  }
  const numKeys = args.length;
  args.push(atUs);
  for (const c of checks) {
    const kind = KIND[c.algorithm] + (c.overridable === true ? OVERRIDABLE : 0);
    args.push(kind, timeOf(c), capacityOf(c), c.cost, c.algorithm === 'concurrency' ? c.lease : '');
  }
  return { numKeys, args };
}

/** Per check of a SETTLE call: remaining, reset (µs), retry (µs; 0 when its cost fits now). */
export interface SettledCheck {
  readonly remaining: number;
  readonly resetUs: number;
  readonly retryUs: number;
}

/** The rows of a SETTLE reply for `n` checks; throws on a reply of another shape. */
export function parseSettle(reply: unknown, n: number): SettledCheck[] {
  if (!Array.isArray(reply) || reply.length !== 3 * n) {
    throw new Error(`unexpected reply from the settle script: ${JSON.stringify(reply)?.slice(0, 200)}`);
  }
  const rows = new Array<SettledCheck>(n);
  for (let i = 0; i < n; i++)
    rows[i] = { remaining: Number(reply[3 * i]), resetUs: Number(reply[3 * i + 1]), retryUs: Number(reply[3 * i + 2]) };
  return rows;
}

/** The RELEASE script's call for the leases of `checks` (concurrency checks). */
export function encodeRelease(checks: readonly Check[]): ScriptCall {
  const keys: string[] = [];
  const argv: (string | number)[] = [];
  for (const c of checks) {
    if (c.algorithm !== 'concurrency') continue;
    keys.push(c.key);
    argv.push(c.lease, c.cost);
  }
  return { numKeys: keys.length, args: [...keys, ...argv] };
}

/** An override's value as the scripts read it (`own_numbers`): "<time> <capacity>", whole numbers. */
export const encodeOverride = (numbers: OverrideNumbers): string => `${Math.round(numbers.timeUs)} ${Math.round(numbers.capacity)}`;
