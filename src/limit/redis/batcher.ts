import type { Check } from '../types';
import type { Decision } from '../store';

/** One decision waiting for its call. */
export interface Pending {
  readonly checks: readonly Check[];
  /** `atUs`: the script's clock (only decisions across slots need it; the rest ignore it). */
  resolve(decision: Decision, atUs: number): void;
  reject(err: unknown): void;
}

/** A turn is split in two calls (see flush) only when each half holds at least this many decisions. */
const SPLIT_AT_LEAST = 16;

export interface TurnBatcherOptions {
  /** Most decisions in one call. */
  readonly maxBatch: number;
  /** The hash slot of a decision, on Cluster (a call's keys must share one); absent: one server. */
  readonly slotOf: ((checks: readonly Check[]) => number) | undefined;
  /** Makes one call for `batch` and settles each of its decisions; resolves when it has. Never rejects. */
  readonly send: (batch: readonly Pending[]) => Promise<void>;
}

/**
 * Coalesces the decisions of one event-loop turn into as few calls as the topology allows (one
 * per hash slot on Cluster, up to `maxBatch` each): a busy process pays one round trip and one
 * script start for many requests. Returns the function that queues a decision.
 */
export function createTurnBatcher(options: TurnBatcherOptions): (p: Pending) => void {
  const { maxBatch, slotOf, send } = options;
  let queue: Pending[] = [];
  let scheduled = false;
  /** Calls sent and not answered yet. */
  let inFlight = 0;
  const answered = () => {
    inFlight--;
  };

  function dispatch(batch: readonly Pending[]): void {
    inFlight++;
    void send(batch).then(answered, answered);
  }

  function flush(): void {
    scheduled = false;
    const pending = queue;
    queue = [];
    if (slotOf === undefined) {
      // With no call in flight, a large turn goes as two calls, the second a turn later: Redis
      // answers the first before it reads the second (it answers all it read at once), so the
      // first one's decisions are answered here, and the next ones sent, while Redis works on
      // the second, instead of one side waiting for the other.
      if (inFlight === 0 && pending.length >= 2 * SPLIT_AT_LEAST && pending.length <= 2 * maxBatch) {
        const half = Math.ceil(pending.length / 2);
        dispatch(pending.slice(0, half));
        const rest = pending.slice(half);
        inFlight++; // the second half counts as sent: the next turn's decisions are not split
        setImmediate(() => {
          inFlight--;
          dispatch(rest);
        });
        return;
      }
      for (let i = 0; i < pending.length; i += maxBatch) dispatch(pending.slice(i, i + maxBatch));
      return;
    }
    const bySlot = new Map<number, Pending[]>();
    for (const p of pending) {
      const slot = slotOf(p.checks);
      const group = bySlot.get(slot);
      if (group === undefined) bySlot.set(slot, [p]);
      else group.push(p);
    }
    for (const group of bySlot.values()) {
      for (let i = 0; i < group.length; i += maxBatch) dispatch(group.slice(i, i + maxBatch));
    }
  }

  return (p) => {
    queue.push(p);
    if (!scheduled) {
      scheduled = true;
      // After the I/O callbacks of this turn: the requests that arrived together go together.
      setImmediate(flush);
    }
  };
}
