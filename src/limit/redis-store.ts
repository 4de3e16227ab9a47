import calculateSlot from 'cluster-key-slot';
import { Cluster, type Redis } from 'ioredis';
import { DECIDE_SCRIPT } from './decide-script';
import type { Check, Decision, RateLimitStore } from './types';

/** Options of {@link createRedisStore}. */
export interface RedisStoreOptions {
  /** An ioredis client (standalone, Sentinel or Cluster). The store does not close it. */
  readonly client: Redis | Cluster;
  /**
   * Most decisions sent in one script call. The decisions made in one event-loop turn are
   * coalesced into one `EVALSHA` (per hash slot on Cluster); `1` sends one call per decision.
   */
  readonly maxBatch?: number;
}

/** Defaults of {@link createRedisStore}. */
export const REDIS_STORE_DEFAULTS = Object.freeze({ maxBatch: 128, topologyRefreshMs: 100, topologyWatchMs: 10_000 });

const COMMAND = 'rampartDecide';

type DecideCommand = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

interface Pending {
  readonly checks: readonly Check[];
  resolve(decision: Decision): void;
  reject(err: unknown): void;
}

function parseReply(reply: unknown, batch: readonly Pending[]): Decision[] {
  const expected = batch.reduce((sum, p) => sum + 1 + 2 * p.checks.length, 0);
  if (!Array.isArray(reply) || reply.length !== expected) {
    throw new Error(`unexpected reply from the rate limit script: ${JSON.stringify(reply)?.slice(0, 200)}`);
  }
  const out = new Array<Decision>(batch.length);
  let r = 0;
  for (let d = 0; d < batch.length; d++) {
    const n = (batch[d] as Pending).checks.length;
    const remaining = new Array<number>(n);
    const resetUs = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      remaining[i] = Number(reply[r + 1 + 2 * i]);
      resetUs[i] = Number(reply[r + 2 + 2 * i]);
    }
    const retryAfterUs = Number(reply[r]);
    out[d] = { allowed: retryAfterUs === 0, retryAfterUs, remaining, resetUs };
    r += 1 + 2 * n;
  }
  return out;
}

/** The 1-based index of `c`'s (kind, a, b, cost) in `shapes` (4 numbers each), added if new. */
function shapeIndex(shapes: number[], c: Check): number {
  // A call holds a handful of distinct policies: a linear scan allocates nothing.
  for (let o = 0; o < shapes.length; o += 4) {
    if (shapes[o] === c.kind && shapes[o + 1] === c.a && shapes[o + 2] === c.b && shapes[o + 3] === c.cost) return o / 4 + 1;
  }
  shapes.push(c.kind, c.a, c.b, c.cost);
  return shapes.length / 4;
}

/**
 * The Redis store: every decision is one pass of one Lua script, with the clock from Redis
 * `TIME`. The decisions of one event-loop turn share a call (ioredis sends `EVALSHA`, falling
 * back to `EVAL` only on NOSCRIPT), so a busy process pays one round trip and one script
 * start for many requests; a call failing fails each of its decisions.
 */
export function createRedisStore(options: RedisStoreOptions): RateLimitStore {
  const { client } = options;
  const maxBatch = options.maxBatch ?? REDIS_STORE_DEFAULTS.maxBatch;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new TypeError(`maxBatch must be a positive integer, got ${maxBatch}`);
  if (typeof (client as unknown as Record<string, unknown>)[COMMAND] !== 'function') {
    client.defineCommand(COMMAND, { lua: DECIDE_SCRIPT });
  }
  const command = (client as unknown as Record<string, DecideCommand>)[COMMAND] as DecideCommand;
  const cluster = client instanceof Cluster;

  let queue: Pending[] = [];
  let scheduled = false;
  const recoveryListeners: (() => void)[] = [];

  // Cluster: after a failed call, ask for the slot map every 100 ms for a while, so a promoted
  // replica is found within ~100 ms of its election instead of at the next periodic refresh
  // (while a shard's breaker is open no command runs that would make ioredis look).
  let lastFailure = 0;
  let refresher: NodeJS.Timeout | undefined;
  function watchTopology(): void {
    if (!cluster) return;
    lastFailure = Date.now();
    if (refresher !== undefined) return;
    refresher = setInterval(() => {
      if (Date.now() - lastFailure > REDIS_STORE_DEFAULTS.topologyWatchMs) {
        clearInterval(refresher);
        refresher = undefined;
        return;
      }
      (client as Cluster).refreshSlotsCache();
    }, REDIS_STORE_DEFAULTS.topologyRefreshMs);
    refresher.unref();
  }

  function send(batch: readonly Pending[]): void {
    // Each distinct (kind, a, b, cost) goes once; a check names its shape by index, so a
    // single-policy decision costs its key and one small number.
    const args: (string | number)[] = []; // the keys, then the ARGV (see DECIDE_SCRIPT)
    const shapes: number[] = [];
    const refs: number[] = [];
    for (const p of batch) {
      const n = p.checks.length;
      if (n > 1) refs.push(-n);
      for (const c of p.checks) {
        args.push(c.key);
        refs.push(shapeIndex(shapes, c));
      }
    }
    const numKeys = args.length;
    args.push(batch.length, shapes.length / 4, ...shapes, ...refs);
    command.call(client, numKeys, ...args).then(
      (reply) => {
        let decisions: Decision[];
        try {
          decisions = parseReply(reply, batch);
        } catch (err) {
          for (const p of batch) p.reject(err);
          return;
        }
        for (let i = 0; i < batch.length; i++) (batch[i] as Pending).resolve(decisions[i] as Decision);
      },
      (err: unknown) => {
        watchTopology();
        for (const p of batch) p.reject(err);
      },
    );
  }

  function flush(): void {
    scheduled = false;
    const pending = queue;
    queue = [];
    if (!cluster) {
      for (let i = 0; i < pending.length; i += maxBatch) send(pending.slice(i, i + maxBatch));
      return;
    }
    // On Cluster a call's keys must share a slot: one batch per slot.
    const bySlot = new Map<number, Pending[]>();
    for (const p of pending) {
      const slot = calculateSlot((p.checks[0] as Check).key);
      const group = bySlot.get(slot);
      if (group === undefined) bySlot.set(slot, [p]);
      else group.push(p);
    }
    for (const group of bySlot.values()) {
      for (let i = 0; i < group.length; i += maxBatch) send(group.slice(i, i + maxBatch));
    }
  }

  return {
    name: 'redis',
    ...(cluster
      ? {
          partition: (key: string) => (client as Cluster).slots[calculateSlot(key)]?.[0] ?? 'unmapped',
        }
      : {}),
    onRecover(listener: () => void) {
      recoveryListeners.push(listener);
      client.on('ready', listener);
      // Cluster: a slots refresh may have found a promoted replica.
      if (cluster) client.on('refresh', listener);
    },
    decide(checks: readonly Check[]): Promise<Decision> {
      if (checks.length === 0) return Promise.reject(new TypeError('decide() needs at least one check'));
      return new Promise<Decision>((resolve, reject) => {
        queue.push({ checks, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          // After the I/O callbacks of this turn: the requests that arrived together go together.
          setImmediate(flush);
        }
      });
    },
    close() {
      clearInterval(refresher);
      refresher = undefined;
      // The client outlives the store: take back what the store hung on it.
      for (const l of recoveryListeners) {
        client.off('ready', l);
        client.off('refresh', l);
      }
      recoveryListeners.length = 0;
      return Promise.resolve();
    },
  };
}
