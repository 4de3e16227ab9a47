import calculateSlot from 'cluster-key-slot';
import { Cluster, type Redis } from 'ioredis';
import { DECIDE_SCRIPT, SETTLE_SCRIPT } from './decide-script';
import type { CallGuard, Check, Decision, DecideOptions, RateLimitStore } from './types';

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
const SETTLE = 'rampartSettle';

type ScriptCommand = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

/** A decision and the script's clock when it was made (the admission time of what it admitted). */
interface TimedDecision extends Decision {
  readonly atUs: number;
}

interface Pending {
  readonly checks: readonly Check[];
  resolve(decision: TimedDecision): void;
  reject(err: unknown): void;
}

const runDirectly: CallGuard = (_key, call) => call();

function parseReply(reply: unknown, batch: readonly Pending[]): TimedDecision[] {
  const expected = batch.reduce((sum, p) => sum + 1 + 2 * p.checks.length, 1);
  if (!Array.isArray(reply) || reply.length !== expected) {
    throw new Error(`unexpected reply from the rate limit script: ${JSON.stringify(reply)?.slice(0, 200)}`);
  }
  const atUs = Number(reply[0]);
  const out = new Array<TimedDecision>(batch.length);
  let r = 1;
  for (let d = 0; d < batch.length; d++) {
    const n = (batch[d] as Pending).checks.length;
    const remaining = new Array<number>(n);
    const resetUs = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      remaining[i] = Number(reply[r + 1 + 2 * i]);
      resetUs[i] = Number(reply[r + 2 + 2 * i]);
    }
    const retryAfterUs = Number(reply[r]);
    out[d] = { allowed: retryAfterUs === 0, retryAfterUs, remaining, resetUs, atUs };
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

/**
 * The Redis store: every decision is one pass of one Lua script, with the clock from Redis
 * `TIME`. The decisions of one event-loop turn share a call (ioredis sends `EVALSHA`, falling
 * back to `EVAL` only on NOSCRIPT), so a busy process pays one round trip and one script
 * start for many requests; a call failing fails each of its decisions.
 *
 * On Cluster a script call may only touch one hash slot. A decision whose keys share a slot (one
 * identity, any number of policies) is still one call. A decision over keys in several slots
 * (e.g. a per-IP and a per-username policy) is decided slot by slot in ascending slot order, each
 * step all-or-nothing and consuming; when a step denies, the steps before it are given back and
 * the slots after it are only read (one more round trip, in parallel). No bucket ever admits past
 * its limit; what it may do for a moment is under-admit (see the README's Cluster section).
 */
export function createRedisStore(options: RedisStoreOptions): RateLimitStore {
  const { client } = options;
  const maxBatch = options.maxBatch ?? REDIS_STORE_DEFAULTS.maxBatch;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new TypeError(`maxBatch must be a positive integer, got ${maxBatch}`);
  const commands = client as unknown as Record<string, ScriptCommand>;
  if (typeof commands[COMMAND] !== 'function') client.defineCommand(COMMAND, { lua: DECIDE_SCRIPT });
  if (typeof commands[SETTLE] !== 'function') client.defineCommand(SETTLE, { lua: SETTLE_SCRIPT });
  const command = commands[COMMAND] as ScriptCommand;
  const settleCommand = commands[SETTLE] as ScriptCommand;
  const cluster = client instanceof Cluster;

  let queue: Pending[] = [];
  let scheduled = false;
  const unhook: (() => void)[] = [];

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
        let decisions: TimedDecision[];
        try {
          decisions = parseReply(reply, batch);
        } catch (err) {
          for (const p of batch) p.reject(err);
          return;
        }
        for (let i = 0; i < batch.length; i++) (batch[i] as Pending).resolve(decisions[i] as TimedDecision);
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

  /** Queues checks of one slot for the next coalesced call. */
  function enqueue(checks: readonly Check[]): Promise<TimedDecision> {
    return new Promise<TimedDecision>((resolve, reject) => {
      queue.push({ checks, resolve, reject });
      if (!scheduled) {
        scheduled = true;
        // After the I/O callbacks of this turn: the requests that arrived together go together.
        setImmediate(flush);
      }
    });
  }

  /** Gives back one admitted step (`atUs`), or only reads (`-1`); per check: remaining, reset, retry. */
  async function settle(checks: readonly Check[], atUs: number): Promise<number[]> {
    const args: (string | number)[] = checks.map((c) => c.key);
    args.push(atUs);
    for (const c of checks) args.push(c.kind, c.a, c.b, c.cost);
    const reply = await settleCommand.call(client, checks.length, ...args).catch((err: unknown) => {
      watchTopology();
      throw err;
    });
    if (!Array.isArray(reply) || reply.length !== 3 * checks.length) {
      throw new Error(`unexpected reply from the settle script: ${JSON.stringify(reply)?.slice(0, 200)}`);
    }
    return reply.map(Number);
  }

  async function decideAcrossSlots(checks: readonly Check[], guard: CallGuard): Promise<Decision> {
    const groups = groupBySlot(checks);
    const remaining = new Array<number>(checks.length);
    const resetUs = new Array<number>(checks.length);
    const admitted: { group: SlotGroup; atUs: number }[] = [];
    let denied: { step: number; decision: TimedDecision } | undefined;
    for (let step = 0; step < groups.length && denied === undefined; step++) {
      const group = groups[step] as SlotGroup;
      let d: TimedDecision;
      try {
        d = await guard((group.checks[0] as Check).key, () => enqueue(group.checks));
      } catch (err) {
        // The decision fails as a whole: give back what the earlier steps took (best effort; if
        // that fails too, those buckets stay charged until they refill).
        for (const a of admitted) guard((a.group.checks[0] as Check).key, () => settle(a.group.checks, a.atUs)).catch(() => undefined);
        throw err;
      }
      group.at.forEach((i, j) => {
        remaining[i] = d.remaining[j] as number;
        resetUs[i] = d.resetUs[j] as number;
      });
      if (d.allowed) admitted.push({ group, atUs: d.atUs });
      else denied = { step, decision: d };
    }
    if (denied === undefined) return { allowed: true, retryAfterUs: 0, remaining, resetUs };

    let retryAfterUs = denied.decision.retryAfterUs;
    const unvisited = groups.slice(denied.step + 1);
    const settling = [...admitted, ...unvisited.map((group) => ({ group, atUs: -1 }))];
    await Promise.all(
      settling.map(async ({ group, atUs }) => {
        try {
          const rows = await guard((group.checks[0] as Check).key, () => settle(group.checks, atUs));
          group.at.forEach((i, j) => {
            remaining[i] = rows[3 * j] as number;
            resetUs[i] = rows[3 * j + 1] as number;
            if ((rows[3 * j + 2] as number) > retryAfterUs) retryAfterUs = rows[3 * j + 2] as number;
          });
        } catch {
          // Not given back: the step's own numbers stand (it stays charged). Not read: shown full.
          if (atUs === -1) {
            group.at.forEach((i, j) => {
              remaining[i] = (group.checks[j] as Check).b;
              resetUs[i] = 0;
            });
          }
        }
      }),
    );
    return { allowed: false, retryAfterUs, remaining, resetUs };
  }

  /** Closes the breakers of a cluster node as soon as it answers again. */
  function watchNodes(listener: (domain?: string) => void): void {
    const c = client as Cluster;
    const seen = new WeakSet<Redis>();
    const watch = (node: Redis) => {
      if (seen.has(node)) return;
      seen.add(node);
      const domain = `${node.options.host ?? ''}:${node.options.port ?? ''}`;
      // A node that is reachable again may still refuse its slots (CLUSTERDOWN) until the
      // cluster has taken it back: its breaker closes once it says the cluster is ok.
      const onReady = () => {
        const until = Date.now() + REDIS_STORE_DEFAULTS.topologyWatchMs;
        const ask = () => {
          if (node.status !== 'ready') return;
          node.call('CLUSTER', 'INFO').then(
            (text) => {
              if (String(text).includes('cluster_state:ok')) listener(domain);
              else if (Date.now() < until) setTimeout(ask, REDIS_STORE_DEFAULTS.topologyRefreshMs).unref();
            },
            () => undefined,
          );
        };
        ask();
      };
      node.on('ready', onReady);
      unhook.push(() => node.off('ready', onReady));
      // ioredis connects to a node lazily, on its first command, and no command reaches a
      // shard whose breaker is open: connect now, so a node that is back is known at once.
      if (node.status === 'wait' && node.options.readOnly !== true) node.connect().catch(() => undefined);
    };
    for (const node of c.nodes('all')) watch(node);
    c.on('+node', watch);
    unhook.push(() => c.off('+node', watch));
  }

  return {
    name: 'redis',
    ...(cluster
      ? {
          partition: (key: string) => (client as Cluster).slots[calculateSlot(key)]?.[0] ?? 'unmapped',
        }
      : {}),
    onRecover(listener: (domain?: string) => void) {
      // The whole client (re)connected. On Cluster a slot with a new owner needs no event: its
      // keys map to another domain, and so to another breaker, as soon as the slot map says so.
      const onReady = () => listener();
      client.on('ready', onReady);
      unhook.push(() => client.off('ready', onReady));
      if (cluster) watchNodes(listener);
    },
    decide(checks: readonly Check[], decideOptions?: DecideOptions): Promise<Decision> {
      if (checks.length === 0) return Promise.reject(new TypeError('decide() needs at least one check'));
      const guard = decideOptions?.guard;
      if (cluster && checks.length > 1) {
        const slot = calculateSlot((checks[0] as Check).key);
        for (let i = 1; i < checks.length; i++) {
          if (calculateSlot((checks[i] as Check).key) !== slot) return decideAcrossSlots(checks, guard ?? runDirectly);
        }
      }
      return guard === undefined ? enqueue(checks) : guard((checks[0] as Check).key, () => enqueue(checks));
    },
    close() {
      clearInterval(refresher);
      refresher = undefined;
      // The client outlives the store: take back what the store hung on it.
      for (const u of unhook.splice(0)) u();
      return Promise.resolve();
    },
  };
}
