import calculateSlot from 'cluster-key-slot';
import { capacityOf } from '../algorithms';
import type { Check } from '../types';
import type { CallGuard, Decision } from '../store';
import type { SettledCheck } from './wire';

/** A decision and the script's clock when it was made (the admission time of what it admitted). */
export interface TimedDecision {
  readonly decision: Decision;
  readonly atUs: number;
}

/** What a decision across slots uses of the store. */
export interface SlotSteps {
  /** Decides one slot's checks (queued with the turn's other decisions). */
  readonly decide: (checks: readonly Check[]) => Promise<TimedDecision>;
  /** Gives back one slot's step admitted at `atUs`, or only reads it (`atUs` -1). */
  readonly settle: (checks: readonly Check[], atUs: number) => Promise<SettledCheck[]>;
  /** Wraps each call (the breaker of the key's domain). */
  readonly guard: CallGuard;
}

/** The checks of a decision that share one hash slot, and where they sit in the decision. */
interface SlotGroup {
  readonly slot: number;
  readonly at: number[];
  readonly checks: Check[];
}

/** The checks by hash slot, in ascending slot order: every process visits the slots alike. */
function groupBySlot(checks: readonly Check[]): SlotGroup[] {
  const groups: SlotGroup[] = [];
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i] as Check;
    const slot = calculateSlot(c.key);
    const g = groups.find((x) => x.slot === slot);
    if (g === undefined) groups.push({ slot, at: [i], checks: [c] });
    else {
      g.at.push(i);
      g.checks.push(c);
    }
  }
  return groups.sort((x, y) => x.slot - y.slot);
}

/** The key a call for `checks` is routed by (and its breaker chosen by): the first check's. */
export const keyOf = (checks: readonly Check[]) => (checks[0] as Check).key;

/** Gives a step back in the background (best effort: if it fails, the step stays charged until it refills). */
export function giveBack(steps: SlotSteps, checks: readonly Check[], atUs: number): void {
  steps.guard(keyOf(checks), () => steps.settle(checks, atUs)).catch(() => undefined);
}

/**
 * A decision over keys in several Cluster hash slots (a script call may touch only one), slot by
 * slot in ascending slot order, each step all-or-nothing and consuming; when a step denies, the
 * steps before it are given back and the slots after it are only read (one more round trip, in
 * parallel). No bucket ever admits past its limit; what it may do for a moment is under-admit
 * (see docs/redis.md, Cluster). `signal`: the caller stopped waiting; nothing more is sent and
 * what was taken is given back.
 */
export async function decideAcrossSlots(checks: readonly Check[], steps: SlotSteps, signal: AbortSignal | undefined): Promise<Decision> {
  const groups = groupBySlot(checks);
  const remaining = new Array<number>(checks.length);
  const resetUs = new Array<number>(checks.length);
  const atUs = new Array<number>(checks.length);
  const admitted: { group: SlotGroup; atUs: number }[] = [];
  const abandon = (err: unknown): never => {
    for (const a of admitted) giveBack(steps, a.group.checks, a.atUs);
    throw err;
  };
  let denied: { step: number; decision: Decision } | undefined;
  let blocked = 0;
  for (let step = 0; step < groups.length && denied === undefined; step++) {
    // The caller gave up (its deadline): send nothing more, give back what was taken.
    if (signal?.aborted === true) abandon(signal.reason);
    const group = groups[step] as SlotGroup;
    const call = steps.decide(group.checks);
    let t: TimedDecision;
    try {
      t = await steps.guard(keyOf(group.checks), () => call);
    } catch (err) {
      // A step that timed out may still be admitted later: give that back too.
      call.then(
        (late) => {
          if (late.decision.allowed) giveBack(steps, group.checks, late.atUs);
        },
        () => undefined,
      );
      return abandon(err);
    }
    const d = t.decision;
    if (d.allowed) admitted.push({ group, atUs: t.atUs });
    if (signal?.aborted === true) abandon(signal.reason);
    group.at.forEach((i, j) => {
      atUs[i] = t.atUs;
      remaining[i] = d.remaining[j] as number;
      resetUs[i] = d.resetUs[j] as number;
      if (((d.blocked ?? 0) & (1 << j)) !== 0) blocked |= 1 << i;
    });
    if (!d.allowed) denied = { step, decision: d };
  }
  if (denied === undefined) return { allowed: true, retryAfterUs: 0, remaining, resetUs, atUs };

  // Denied: the answer is known. Give back the earlier steps and read the later ones, for the
  // headers and the longest wait, but never past the caller's deadline: what is not back by
  // then is shown as it will be (a step given back: as before the request; a slot not read:
  // full) and the give-backs go on in the background.
  for (const a of admitted) {
    a.group.at.forEach((i, j) => {
      remaining[i] = (remaining[i] as number) + (a.group.checks[j] as Check).cost;
    });
  }
  const unvisited = groups.slice(denied.step + 1);
  for (const group of unvisited) {
    group.at.forEach((i, j) => {
      remaining[i] = capacityOf(group.checks[j] as Check);
      resetUs[i] = 0;
    });
  }
  let retryAfterUs = denied.decision.retryAfterUs;
  const settled = Promise.all(
    [...admitted, ...unvisited.map((group) => ({ group, atUs: -1 }))].map(async ({ group, atUs }) => {
      const rows = await steps.guard(keyOf(group.checks), () => steps.settle(group.checks, atUs)).catch(() => undefined);
      if (rows === undefined || signal?.aborted === true) return;
      group.at.forEach((i, j) => {
        const row = rows[j] as SettledCheck;
        remaining[i] = row.remaining;
        resetUs[i] = row.resetUs;
        if (row.retryUs > retryAfterUs) retryAfterUs = row.retryUs;
      });
    }),
  );
  if (signal === undefined) await settled;
  else if (!signal.aborted) {
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<void>((resolve) => {
      onAbort = () => resolve();
      signal.addEventListener('abort', onAbort, { once: true });
    });
    await Promise.race([settled, aborted]);
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
  // Settles that land after an abort change nothing (they check the signal first).
  return blocked === 0
    ? { allowed: false, retryAfterUs, remaining, resetUs }
    : { allowed: false, retryAfterUs, remaining, resetUs, blocked };
}
