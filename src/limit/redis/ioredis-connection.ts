import type { Cluster, Redis } from 'ioredis';
import { redisOutageCause } from '../../redis/outage-cause';
import { followSentinelMaster } from '../../redis/sentinel-follow';
import { watchCluster } from './cluster-watch';
import { listeners } from './listeners';
import type { StoreConnection } from './connection';
import type { ScriptCall } from './wire';

type ScriptCommand = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

/**
 * The store's connection on an ioredis client (6, 5, or iovalkey, its fork): scripts through
 * `defineCommand` (ioredis sends EVALSHA, and EVAL once after NOSCRIPT), a Cluster recognised by
 * `isCluster` and a server's reply by its error's name, never by one copy's classes. A Sentinel
 * client is moved to a new master as soon as a sentinel announces it (sentinel-follow.ts).
 */
export function ioredisConnection(client: Redis | Cluster): StoreConnection {
  const cluster = client.isCluster ? watchCluster(client as Cluster) : undefined;
  // A Sentinel client made elsewhere follows a switch of master as one of createRedisClient does.
  if (cluster === undefined) followSentinelMaster(client);
  const hooks = listeners(client);
  const hook = (event: string, fn: () => void) => hooks.hook(event, fn);
  // Every script is loaded up front and again on each connection that becomes ready (a
  // reconnect, a new master after a failover, a Cluster node; on Cluster every node connected,
  // replicas too: the client may have reached one at start-up, and it keeps its scripts when it
  // is promoted, which a replica never gets from its master), so a decision rarely meets
  // NOSCRIPT; when one does (a flushed cache), ioredis sends the source once. A user without
  // SCRIPT LOAD only loses the head start.
  const scripts: string[] = [];
  const load = (target: Redis, lua: string) => void target.script('LOAD', lua).catch(() => undefined);
  const loadAll = (target: Redis) => {
    for (const lua of scripts) load(target, lua);
  };
  const readyTargets = (): Redis[] =>
    cluster === undefined
      ? client.status === 'ready'
        ? [client as Redis]
        : []
      : (client as Cluster).nodes('all').filter((n) => n.status === 'ready');
  if (cluster === undefined) hook('ready', () => loadAll(client as Redis));
  else {
    const watched = new WeakSet<Redis>();
    const watchNode = (node: Redis) => {
      if (watched.has(node)) return;
      watched.add(node);
      const onReady = () => loadAll(node);
      node.on('ready', onReady);
      hooks.add(() => node.off('ready', onReady));
    };
    for (const node of (client as Cluster).nodes('all')) watchNode(node);
    hook('+node', watchNode as () => void);
  }
  return {
    cluster,
    script(name: string, lua: string, preload = true): (call: ScriptCall) => Promise<unknown> {
      if (preload && !scripts.includes(lua)) {
        scripts.push(lua);
        for (const target of readyTargets()) load(target, lua);
      }
      const commands = client as unknown as Record<string, ScriptCommand>;
      if (typeof commands[name] !== 'function') client.defineCommand(name, { lua });
      const command = commands[name] as ScriptCommand;
      return (call) => command.call(client, call.numKeys, ...call.args);
    },
    set: (key, value, ttlMs) => (ttlMs === undefined ? client.set(key, value) : client.set(key, value, 'PX', ttlMs)),
    del: (key) => client.del(key),
    command: (_key, args) => client.call(String(args[0]), ...args.slice(1)),
    // ioredis 5 and 6 (and iovalkey) may each bring their own ReplyError class.
    isReply: (err) => err instanceof Error && err.name === 'ReplyError',
    outageCause: (key) => redisOutageCause(client, cluster?.nodeOf(key)),
    onReady: (listener) => hook('ready', listener),
    onRefresh: (listener) => hook('refresh', listener),
    close() {
      cluster?.close();
      hooks.close();
    },
  };
}
