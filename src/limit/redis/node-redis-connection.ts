import { createHash } from 'node:crypto';
import calculateSlot from 'cluster-key-slot';
import type { ClusterWatch } from './cluster-watch';
import { listeners } from './listeners';
import type { StoreConnection } from './connection';
import type { ScriptCall } from './wire';

// The store on node-redis (5 and 6), typed by shape: the package is not a dependency, and a
// client of any copy of it fits.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
type Listener = (...args: any[]) => void;

/** The listener-taking side of a node-redis client or cluster (an EventEmitter). */
interface Emitter {
  on(event: string, listener: Listener): unknown;
  off(event: string, listener: Listener): unknown;
}

/** What the store uses of a node-redis client (`createClient()`, connected). */
export interface NodeRedisClient extends Emitter {
  sendCommand(args: string[]): Promise<unknown>;
  readonly isReady: boolean;
}

/** A master of a node-redis cluster's slot map. */
interface NodeRedisMaster {
  readonly address: string;
  readonly client?: NodeRedisClient | undefined;
}

/** What the store uses of a node-redis cluster (`createCluster()`, connected). */
export interface NodeRedisCluster extends Emitter {
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
  readonly slots: readonly ({ readonly master: NodeRedisMaster } | undefined)[];
  readonly masters: readonly NodeRedisMaster[];
}

/** A node-redis client or cluster: no `defineCommand` (ioredis has one), a `sendCommand`. */
export function isNodeRedis(client: object): client is NodeRedisClient | NodeRedisCluster {
  const c = client as Record<string, unknown>;
  return typeof c['defineCommand'] !== 'function' && typeof c['sendCommand'] === 'function';
}

const isCluster = (client: NodeRedisClient | NodeRedisCluster): client is NodeRedisCluster => 'masters' in client;

/** A server's reply: node-redis's ErrorReply and its subclasses, known by name through the prototype chain. */
function isReply(err: unknown): boolean {
  for (let p: unknown = err; p !== null && typeof p === 'object'; p = Object.getPrototypeOf(p)) {
    if ((p as { constructor?: { name?: string } }).constructor?.name === 'ErrorReply') return true;
  }
  return false;
}

/** After a failure on Cluster, the slot map is asked for this often… */
const TOPOLOGY_REFRESH_MS = 100;
/** …for this long. */
const TOPOLOGY_WATCH_MS = 10_000;

/**
 * The store's connection on node-redis. Scripts by `EVALSHA`, the source sent once with `EVAL`
 * after `NOSCRIPT` (a flushed cache, a promoted replica that never saw the script). Connection
 * errors (the `error` and `node-error` events) are kept per address until it is ready again, to
 * say why a call failed. On Cluster, a failed call (or a node's connection error) makes the
 * cluster rediscover its slot map every 100 ms for a while, so a promoted replica is used as
 * soon as the cluster says so.
 */
export function nodeRedisConnection(client: NodeRedisClient | NodeRedisCluster): StoreConnection {
  const cluster = isCluster(client) ? client : undefined;
  const lastError = new Map<string, string>();
  const hooks = listeners(client);
  const hook = (event: string, fn: Listener) => hooks.hook(event, fn);
  const refreshed = new Set<() => void>();
  const watch = cluster === undefined ? undefined : watchNodeRedisCluster(cluster, () => refreshed.forEach((f) => f()));

  if (cluster === undefined) {
    hook('error', (err: unknown) => lastError.set('', err instanceof Error ? err.message : String(err)));
    hook('ready', () => lastError.delete(''));
  } else {
    const at = (info: { host?: string; port?: number } | undefined) => `${info?.host ?? ''}:${info?.port ?? ''}`;
    hook('node-error', (err: unknown, info?: { host?: string; port?: number }) => {
      lastError.set(at(info), err instanceof Error ? err.message : String(err));
      watch?.afterFailure();
    });
    hook('node-ready', (info?: { host?: string; port?: number }) => lastError.delete(at(info)));
  }

  // Every script is loaded up front and again on each connection that becomes ready (a
  // reconnect, a node after a failover), as on ioredis; EVAL after NOSCRIPT stays the fallback.
  const scripts: string[] = [];
  const loadOn = (target: NodeRedisClient | undefined, lua: string) =>
    void target?.sendCommand(['SCRIPT', 'LOAD', lua]).catch(() => undefined);
  const nodeClient = (address: string) => cluster?.masters.find((m) => m.address === address)?.client;
  const readyTargets = (): (NodeRedisClient | undefined)[] =>
    cluster === undefined
      ? [(client as NodeRedisClient).isReady ? (client as NodeRedisClient) : undefined]
      : cluster.masters.map((m) => (m.client?.isReady === true ? m.client : undefined));
  if (cluster === undefined) hook('ready', () => scripts.forEach((lua) => loadOn(client as NodeRedisClient, lua)));
  else
    hook('node-ready', (info?: { host?: string; port?: number }) => {
      const target = nodeClient(`${info?.host ?? ''}:${info?.port ?? ''}`);
      for (const lua of scripts) loadOn(target, lua);
    });

  const send = (firstKey: string | undefined, args: string[]): Promise<unknown> =>
    cluster === undefined ? (client as NodeRedisClient).sendCommand(args) : cluster.sendCommand(firstKey, false, args);

  return {
    cluster: watch,
    script(_name: string, lua: string, preload = true): (call: ScriptCall) => Promise<unknown> {
      if (preload && !scripts.includes(lua)) {
        scripts.push(lua);
        for (const target of readyTargets()) loadOn(target, lua);
      }
      const sha = createHash('sha1').update(lua).digest('hex');
      return (call) => {
        const rest = [String(call.numKeys), ...call.args.map(String)];
        const firstKey = call.numKeys > 0 ? rest[1] : undefined;
        return send(firstKey, ['EVALSHA', sha, ...rest]).catch((err: unknown) => {
          if (!(isReply(err) && (err as Error).message.startsWith('NOSCRIPT'))) throw err;
          return send(firstKey, ['EVAL', lua, ...rest]);
        });
      };
    },
    set: (key, value, ttlMs) => send(key, ttlMs === undefined ? ['SET', key, value] : ['SET', key, value, 'PX', String(ttlMs)]),
    del: (key) => send(key, ['DEL', key]),
    command: (key, args) => send(key, args.map(String)),
    isReply,
    outageCause(key) {
      if (cluster === undefined) return (client as NodeRedisClient).isReady ? undefined : lastError.get('');
      const node = watch?.nodeOf(key);
      const cause = node === undefined ? undefined : lastError.get(node);
      if (cause !== undefined) return cause;
      return node === undefined && lastError.size > 0 ? `no cluster node answered: ${[...lastError.values()].join('; ')}` : undefined;
    },
    onReady: (listener) => (cluster === undefined ? hook('ready', listener) : () => undefined),
    onRefresh(listener) {
      refreshed.add(listener);
      return () => refreshed.delete(listener);
    },
    close() {
      watch?.close();
      refreshed.clear();
      hooks.close();
    },
  };
}

/** The rediscovery node-redis keeps on its cluster's `_slots` (5: from a client; 6: from any). */
type Rediscover = (startWith?: unknown) => Promise<void>;

function watchNodeRedisCluster(cluster: NodeRedisCluster, onRefresh: () => void): ClusterWatch {
  let lastFailure = 0;
  let refresher: NodeJS.Timeout | undefined;
  let asking = false;
  const nodeOf = (key: string) => cluster.slots[calculateSlot(key)]?.master.address;
  const owners = () => new Set(cluster.masters.map((m) => m.address));
  let known = [...owners()].sort().join(',');

  function rediscover(): void {
    const slots = (cluster as unknown as { _slots?: { rediscover?: Rediscover } })._slots;
    if (asking || typeof slots?.rediscover !== 'function') return;
    // node-redis 5 starts from a node's client (and falls back to the root nodes).
    const from = cluster.masters.find((m) => m.client?.isReady === true)?.client ?? cluster.masters[0]?.client;
    asking = true;
    slots
      .rediscover(from)
      .catch(() => undefined)
      .finally(() => {
        asking = false;
        const now = [...owners()].sort().join(',');
        if (now !== known) {
          known = now;
          onRefresh();
        }
      });
  }

  return {
    partition: (key) => nodeOf(key) ?? 'unmapped',
    nodeOf,
    owners,
    afterFailure() {
      lastFailure = Date.now();
      if (refresher !== undefined) return;
      rediscover();
      refresher = setInterval(() => {
        if (Date.now() - lastFailure > TOPOLOGY_WATCH_MS) {
          clearInterval(refresher);
          refresher = undefined;
          return;
        }
        rediscover();
      }, TOPOLOGY_REFRESH_MS);
      refresher.unref();
    },
    watchNodes(listener) {
      // A node that is ready again: its breaker closes (node-redis asks the cluster for its
      // slots before it uses a node it did not know).
      const onNode = (info?: { host?: string; port?: number }) => listener(`${info?.host ?? ''}:${info?.port ?? ''}`);
      cluster.on('node-ready', onNode);
      return () => {
        cluster.off('node-ready', onNode);
      };
    },
    close() {
      clearInterval(refresher);
      refresher = undefined;
    },
  };
}
