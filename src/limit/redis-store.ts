import calculateSlot from 'cluster-key-slot';
import { Cluster, ReplyError, type Redis } from 'ioredis';
import { positiveInteger } from '../internal/options';
import { redisOutageCause } from '../redis/outage-cause';
import { DECIDE_SCRIPT, RELEASE_SCRIPT, SETTLE_SCRIPT } from './decide-script';
import { StoreUnavailableError } from './store-unavailable';
import {
  capacityOf,
  overrideKey,
  penaltyKey,
  timeOf,
  type CallGuard,
  type Check,
  type Decision,
  type DecideOptions,
  type RateLimitStore,
} from './types';

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
export const REDIS_STORE_DEFAULTS = Object.freeze({ maxBatch: 128 });
/** After a failure on Cluster, the slot map is refreshed this often… */
const TOPOLOGY_REFRESH_MS = 100;
/** …for this long (a promoted replica is used as soon as the map says so). */
const TOPOLOGY_WATCH_MS = 10_000;

/** A turn is split in two calls (see flush) only when each half holds at least this many decisions. */
const SPLIT_AT_LEAST = 16;

const COMMAND = 'rampartDecide';
const SETTLE = 'rampartSettle';
const RELEASE = 'rampartRelease';

type ScriptCommand = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

/** A decision and the script's clock when it was made (the admission time of what it admitted). */
interface TimedDecision {
  readonly decision: Decision;
  readonly atUs: number;
}

interface Pending {
  readonly checks: readonly Check[];
  /** `atUs`: the script's clock (only decisions across slots need it; the rest ignore it). */
  resolve(decision: Decision, atUs: number): void;
  reject(err: unknown): void;
}

const runDirectly: CallGuard = (_key, call) => call();
/** Whether a decision's caller has stopped waiting (`abandoned` when given: it makes no AbortSignal). */
const gaveUp = (o: DecideOptions): boolean => (o.abandoned !== undefined ? o.abandoned() : o.signal?.aborted === true);
/** What a release without leases returns. */
const RELEASED = Promise.resolve();

function parseReply(reply: unknown, batch: readonly Pending[]): Decision[] {
  const expected = batch.reduce((sum, p) => sum + 1 + 2 * p.checks.length, 1);
  if (!Array.isArray(reply) || reply.length !== expected) {
    throw new Error(`unexpected reply from the rate limit script: ${JSON.stringify(reply)?.slice(0, 200)}`);
  }
  const out = new Array<Decision>(batch.length);
  let r = 1;
  for (let d = 0; d < batch.length; d++) {
    const n = (batch[d] as Pending).checks.length;
    const remaining = new Array<number>(n);
    const resetUs = new Array<number>(n);
    let blocked = 0;
    for (let i = 0; i < n; i++) {
      const left = Number(reply[r + 1 + 2 * i]);
      // -1: refused by the check's penalty block
      if (left === -1) blocked |= 1 << i;
      remaining[i] = left === -1 ? 0 : left;
      resetUs[i] = Number(reply[r + 2 + 2 * i]);
    }
    const retryAfterUs = Number(reply[r]);
    out[d] =
      blocked === 0
        ? { allowed: retryAfterUs === 0, retryAfterUs, remaining, resetUs }
        : { allowed: false, retryAfterUs, remaining, resetUs, blocked };
    r += 1 + 2 * n;
  }
  return out;
}

/** The scripts' encoding of a check's algorithm (KIND) and numbers (A, B): see DECIDE_SCRIPT. */
const KIND = { token_bucket: 1, sliding_window: 2, quota: 3, concurrency: 4 } as const;
const kindOf = (c: Check): number => KIND[c.algorithm];

/** A kind + 8: the shape has a penalty (3 more numbers); see DECIDE_SCRIPT. */
const WITH_PENALTY = 8;
/** A kind + 16: the check is overridable (its override's key follows); see DECIDE_SCRIPT. */
const OVERRIDABLE = 16;

/**
 * The 1-based index of `c`'s shape in `shapes`, added if new: (kind, a, b, cost), and with a
 * penalty (kind + 8, ..., denials, window, block). `starts` holds where each shape begins.
 */
function shapeIndex(shapes: number[], starts: number[], c: Check): number {
  const pen = c.penalty;
  const kind = kindOf(c) + (pen === undefined ? 0 : WITH_PENALTY) + (c.overridable === true ? OVERRIDABLE : 0);
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
 * its limit; what it may do for a moment is under-admit (see docs/redis.md, Cluster).
 */
export function createRedisStore(options: RedisStoreOptions): RateLimitStore {
  const { client } = options;
  const maxBatch = options.maxBatch ?? REDIS_STORE_DEFAULTS.maxBatch;
  positiveInteger('redisStore', 'maxBatch', maxBatch);
  const commands = client as unknown as Record<string, ScriptCommand>;
  if (typeof commands[COMMAND] !== 'function') client.defineCommand(COMMAND, { lua: DECIDE_SCRIPT });
  if (typeof commands[SETTLE] !== 'function') client.defineCommand(SETTLE, { lua: SETTLE_SCRIPT });
  if (typeof commands[RELEASE] !== 'function') client.defineCommand(RELEASE, { lua: RELEASE_SCRIPT });
  const releaseCommand = commands[RELEASE] as ScriptCommand;
  const command = commands[COMMAND] as ScriptCommand;
  const settleCommand = commands[SETTLE] as ScriptCommand;
  const cluster = client instanceof Cluster;

  let queue: Pending[] = [];
  let scheduled = false;
  /** Decision calls sent and not answered yet. */
  let inFlight = 0;
  // The releases of one event-loop turn go in one call per slot (one on a single server), and
  // those of a slot share one promise: a release allocates no promise of its own.
  interface ReleaseBatch {
    readonly checks: Check[];
    readonly done: Promise<void>;
    resolve(): void;
    reject(err: unknown): void;
  }
  let releases = new Map<number, ReleaseBatch>();
  function releaseBatch(slot: number): ReleaseBatch {
    const open = releases.get(slot);
    if (open !== undefined) return open;
    if (releases.size === 0) setImmediate(flushReleases);
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const batch = { checks: [], done, resolve, reject };
    releases.set(slot, batch);
    return batch;
  }
  function flushReleases(): void {
    const batches = releases;
    releases = new Map();
    for (const batch of batches.values()) {
      const { checks } = batch;
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < checks.length; i += maxBatch) {
        const keys: string[] = [];
        const argv: (string | number)[] = [];
        for (let j = i; j < checks.length && j < i + maxBatch; j++) {
          const c = checks[j] as Check & { lease: string };
          keys.push(c.key);
          argv.push(c.lease, c.cost);
        }
        calls.push(releaseCommand.call(client, keys.length, ...keys, ...argv));
      }
      (calls.length === 1 ? (calls[0] as Promise<unknown>) : Promise.all(calls)).then(
        () => batch.resolve(),
        (err: unknown) => batch.reject(unavailable(err, (checks[0] as Check).key)),
      );
    }
  }
  const unhook: (() => void)[] = [];

  /**
   * A failed call's error as the limiter should see it: when the client's connections said why
   * it cannot serve (outage-cause.ts; a client from createRedisClient), a
   * {@link StoreUnavailableError} naming that cause (`connect ECONNREFUSED 127.0.0.1:6379`)
   * instead of what ioredis says of the call ("Stream isn't writeable..."). A server's reply
   * (`NOSCRIPT`, `OOM`...) stays as it is. Runs once per failed call, never on a success.
   */
  function unavailable(err: unknown, key: string): unknown {
    if (err instanceof ReplyError || err instanceof StoreUnavailableError) return err;
    const node = cluster ? (client as Cluster).slots[calculateSlot(key)]?.[0] : undefined;
    const cause = redisOutageCause(client, node);
    return cause === undefined ? err : new StoreUnavailableError(cause, { cause: err });
  }

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
      if (Date.now() - lastFailure > TOPOLOGY_WATCH_MS) {
        clearInterval(refresher);
        refresher = undefined;
        return;
      }
      (client as Cluster).refreshSlotsCache();
    }, TOPOLOGY_REFRESH_MS);
    refresher.unref();
  }

  function send(batch: readonly Pending[]): void {
    // Each distinct (kind, a, b, cost) goes once; a check names its shape by index, so a
    // single-policy decision costs its key and one small number.
    const args: (string | number)[] = []; // the keys, then the ARGV (see DECIDE_SCRIPT)
    const shapes: number[] = [];
    const starts: number[] = [];
    const refs: number[] = [];
    const leases: string[] = [];
    for (const p of batch) {
      const n = p.checks.length;
      if (n > 1) refs.push(-n);
      for (const c of p.checks) {
        args.push(c.key);
        if (c.penalty !== undefined) args.push(penaltyKey(c.key));
        if (c.overridable === true) args.push(overrideKey(c.key));
        refs.push(shapeIndex(shapes, starts, c));
        if (c.algorithm === 'concurrency') leases.push(c.lease);
      }
    }
    const numKeys = args.length;
    args.push(batch.length, starts.length, ...shapes, leases.length, ...leases, ...refs);
    inFlight++;
    command.call(client, numKeys, ...args).then(
      (reply) => {
        inFlight--;
        let decisions: Decision[];
        try {
          decisions = parseReply(reply, batch);
        } catch (err) {
          for (const p of batch) p.reject(err);
          return;
        }
        const atUs = Number((reply as unknown[])[0]);
        for (let i = 0; i < batch.length; i++) (batch[i] as Pending).resolve(decisions[i] as Decision, atUs);
      },
      (err: unknown) => {
        inFlight--;
        watchTopology();
        const e = unavailable(err, ((batch[0] as Pending).checks[0] as Check).key);
        for (const p of batch) p.reject(e);
      },
    );
  }

  function flush(): void {
    scheduled = false;
    const pending = queue;
    queue = [];
    if (!cluster) {
      // With no call in flight, a large turn goes as two calls, the second a turn later: Redis
      // answers the first before it reads the second (it answers all it read at once), so the
      // first one's decisions are answered here, and the next ones sent, while Redis works on
      // the second, instead of one side waiting for the other.
      if (inFlight === 0 && pending.length >= 2 * SPLIT_AT_LEAST && pending.length <= 2 * maxBatch) {
        const half = Math.ceil(pending.length / 2);
        send(pending.slice(0, half));
        const rest = pending.slice(half);
        inFlight++; // the second half counts as sent: the next turn's decisions are not split
        setImmediate(() => {
          inFlight--;
          send(rest);
        });
        return;
      }
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

  function push(p: Pending): void {
    queue.push(p);
    if (!scheduled) {
      scheduled = true;
      // After the I/O callbacks of this turn: the requests that arrived together go together.
      setImmediate(flush);
    }
  }

  /** Queues checks of one slot for the next coalesced call. */
  function enqueue(checks: readonly Check[]): Promise<Decision> {
    return new Promise<Decision>((resolve, reject) => push({ checks, resolve, reject }));
  }

  /** {@link enqueue}, with the admission time (for a give-back). */
  function enqueueTimed(checks: readonly Check[]): Promise<TimedDecision> {
    return new Promise<TimedDecision>((resolve, reject) =>
      push({ checks, resolve: (decision, atUs) => resolve({ decision, atUs }), reject }),
    );
  }

  /** Gives back one admitted step (`atUs`), or only reads (`-1`); per check: remaining, reset, retry. */
  async function settle(checks: readonly Check[], atUs: number): Promise<number[]> {
    const args: (string | number)[] = [];
    for (const c of checks) {
      args.push(c.key);
      if (c.overridable === true) args.push(overrideKey(c.key));
    }
    const numKeys = args.length;
    args.push(atUs);
    for (const c of checks) {
      const kind = kindOf(c) + (c.overridable === true ? OVERRIDABLE : 0);
      args.push(kind, timeOf(c), capacityOf(c), c.cost, c.algorithm === 'concurrency' ? c.lease : '');
    }
    const reply = await settleCommand.call(client, numKeys, ...args).catch((err: unknown) => {
      watchTopology();
      throw unavailable(err, (checks[0] as Check).key);
    });
    if (!Array.isArray(reply) || reply.length !== 3 * checks.length) {
      throw new Error(`unexpected reply from the settle script: ${JSON.stringify(reply)?.slice(0, 200)}`);
    }
    return reply.map(Number);
  }

  /** Gives a step back in the background (best effort: if it fails, the step stays charged until it refills). */
  function giveBack(checks: readonly Check[], atUs: number, guard: CallGuard): void {
    guard((checks[0] as Check).key, () => settle(checks, atUs)).catch(() => undefined);
  }

  async function decideAcrossSlots(checks: readonly Check[], guard: CallGuard, signal: AbortSignal | undefined): Promise<Decision> {
    const groups = groupBySlot(checks);
    const remaining = new Array<number>(checks.length);
    const resetUs = new Array<number>(checks.length);
    const admitted: { group: SlotGroup; atUs: number }[] = [];
    const abandon = (err: unknown): never => {
      for (const a of admitted) giveBack(a.group.checks, a.atUs, guard);
      throw err;
    };
    let denied: { step: number; decision: Decision } | undefined;
    let blocked = 0;
    for (let step = 0; step < groups.length && denied === undefined; step++) {
      // The caller gave up (its deadline): send nothing more, give back what was taken.
      if (signal?.aborted === true) abandon(signal.reason);
      const group = groups[step] as SlotGroup;
      const call = enqueueTimed(group.checks);
      let t: TimedDecision;
      try {
        t = await guard((group.checks[0] as Check).key, () => call);
      } catch (err) {
        // A step that timed out may still be admitted later: give that back too.
        call.then(
          (late) => {
            if (late.decision.allowed) giveBack(group.checks, late.atUs, guard);
          },
          () => undefined,
        );
        return abandon(err);
      }
      const d = t.decision;
      if (d.allowed) admitted.push({ group, atUs: t.atUs });
      if (signal?.aborted === true) abandon(signal.reason);
      group.at.forEach((i, j) => {
        remaining[i] = d.remaining[j] as number;
        resetUs[i] = d.resetUs[j] as number;
        if (((d.blocked ?? 0) & (1 << j)) !== 0) blocked |= 1 << i;
      });
      if (!d.allowed) denied = { step, decision: d };
    }
    if (denied === undefined) return { allowed: true, retryAfterUs: 0, remaining, resetUs };

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
        const rows = await guard((group.checks[0] as Check).key, () => settle(group.checks, atUs)).catch(() => undefined);
        if (rows === undefined || signal?.aborted === true) return;
        group.at.forEach((i, j) => {
          remaining[i] = rows[3 * j] as number;
          resetUs[i] = rows[3 * j + 1] as number;
          if ((rows[3 * j + 2] as number) > retryAfterUs) retryAfterUs = rows[3 * j + 2] as number;
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

  /**
   * Tells `listener` of each cluster node that answers again and says the cluster is ok; returns
   * what takes the listeners back off.
   */
  function watchNodes(listener: (domain?: string) => void): () => void {
    const c = client as Cluster;
    const watched = new Map<Redis, () => void>();
    let stopped = false;
    const watch = (node: Redis) => {
      if (watched.has(node)) return;
      const domain = `${node.options.host ?? ''}:${node.options.port ?? ''}`;
      // A node that is reachable again may still refuse its slots (CLUSTERDOWN) until the
      // cluster has taken it back: its breaker closes once it says the cluster is ok.
      const onReady = () => {
        const until = Date.now() + TOPOLOGY_WATCH_MS;
        const ask = () => {
          if (stopped || node.status !== 'ready') return;
          node.call('CLUSTER', 'INFO').then(
            (text) => {
              if (stopped) return;
              if (String(text).includes('cluster_state:ok')) listener(domain);
              else if (Date.now() < until) setTimeout(ask, TOPOLOGY_REFRESH_MS).unref();
            },
            () => undefined,
          );
        };
        ask();
      };
      // ioredis replaces a node's connection object when it reconnects: drop the old one.
      const onEnd = () => {
        node.off('ready', onReady);
        watched.delete(node);
      };
      node.on('ready', onReady);
      node.once('end', onEnd);
      watched.set(node, () => {
        node.off('ready', onReady);
        node.off('end', onEnd);
      });
      // Not connected here: ioredis connects a node on its first command (a breaker's half-open
      // probe), and connecting its nodes from outside made a cluster whose nodes announce
      // hostnames drop every connection at its first slot refresh (the compose smoke).
    };
    for (const node of c.nodes('all')) watch(node);
    c.on('+node', watch);
    return () => {
      stopped = true;
      c.off('+node', watch);
      for (const off of watched.values()) off();
      watched.clear();
    };
  }

  /** Registers a client listener until `off()` or the store's close. */
  function hook(event: string, fn: () => void): () => void {
    client.on(event, fn);
    const off = () => {
      client.off(event, fn);
      const k = unhook.indexOf(off);
      if (k !== -1) unhook.splice(k, 1);
    };
    unhook.push(off);
    return off;
  }

  return {
    name: 'redis',
    ...(cluster
      ? {
          partition: (key: string) => (client as Cluster).slots[calculateSlot(key)]?.[0] ?? 'unmapped',
          onTopology(listener: (domains: ReadonlySet<string>) => void) {
            // After each slot-map refresh: the masters that own a slot now.
            return hook('refresh', () => {
              const owners = new Set<string>();
              for (const nodes of (client as Cluster).slots) if (nodes?.[0] !== undefined) owners.add(nodes[0]);
              listener(owners);
            });
          },
        }
      : {}),
    onRecover(listener: (domain?: string) => void) {
      // The whole client (re)connected. On Cluster a slot with a new owner needs no event: its
      // keys map to another domain, and so to another breaker, as soon as the slot map says so.
      const offReady = hook('ready', () => listener());
      if (!cluster) return offReady;
      const offNodes = watchNodes(listener);
      unhook.push(offNodes);
      return () => {
        offReady();
        offNodes();
      };
    },
    decide(checks: readonly Check[], decideOptions?: DecideOptions): Promise<Decision> {
      if (checks.length === 0) return Promise.reject(new TypeError('decide() needs at least one check'));
      const guard = decideOptions?.guard;
      if (cluster && checks.length > 1) {
        const slot = calculateSlot((checks[0] as Check).key);
        for (let i = 1; i < checks.length; i++) {
          if (calculateSlot((checks[i] as Check).key) !== slot)
            return decideAcrossSlots(checks, guard ?? runDirectly, decideOptions?.signal);
        }
      }
      // `abandoned` when the caller gives it: reading `signal` may make an AbortSignal.
      const options = decideOptions;
      if (options === undefined || (options.abandoned === undefined && options.signal === undefined))
        return guard === undefined ? enqueue(checks) : guard((checks[0] as Check).key, () => enqueue(checks));
      // The caller may give up (its deadline) before the reply: an admission that lands after
      // that was never granted to anyone, so it is given back (the caller answered 503, and a
      // retry of that request must not be charged twice).
      const decision = new Promise<Decision>((resolve, reject) =>
        push({
          checks,
          resolve: (d, atUs) => {
            if (d.allowed && gaveUp(options)) giveBack(checks, atUs, guard ?? runDirectly);
            resolve(d);
          },
          reject,
        }),
      );
      return guard === undefined ? decision : guard((checks[0] as Check).key, () => decision);
    },
    release(checks: readonly Check[]): Promise<void> {
      // One request's leases share its identity's slot, as its decision did (unless it was
      // decided across slots: then each slot's releases go with that slot's).
      let batch: ReleaseBatch | undefined;
      let more: Promise<void>[] | undefined;
      for (const c of checks) {
        if (c.algorithm !== 'concurrency') continue;
        const b = releaseBatch(cluster ? calculateSlot(c.key) : 0);
        b.checks.push(c);
        if (batch === undefined) batch = b;
        else if (b !== batch && !(more ??= [batch.done]).includes(b.done)) more.push(b.done);
      }
      if (batch === undefined) return RELEASED;
      return more === undefined ? batch.done : Promise.all(more).then(() => undefined);
    },
    async setOverride(key: string, a: number, b: number, ttlMs?: number): Promise<void> {
      const value = `${Math.round(a)} ${Math.round(b)}`;
      if (ttlMs === undefined) await client.set(overrideKey(key), value);
      else await client.set(overrideKey(key), value, 'PX', Math.max(1, Math.round(ttlMs)));
    },
    async clearOverride(key: string): Promise<void> {
      await client.del(overrideKey(key));
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
