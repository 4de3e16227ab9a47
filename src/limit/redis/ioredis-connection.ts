import type { Cluster, Redis } from 'ioredis';
import { redisOutageCause } from '../../redis/outage-cause';
import { followSentinelMaster } from '../../redis/sentinel-follow';
import { watchCluster } from './cluster-watch';
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
  const unhook: (() => void)[] = [];
  /** Registers a client listener until `off()` or close. */
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
    cluster,
    script(name: string, lua: string): (call: ScriptCall) => Promise<unknown> {
      const commands = client as unknown as Record<string, ScriptCommand>;
      if (typeof commands[name] !== 'function') client.defineCommand(name, { lua });
      const command = commands[name] as ScriptCommand;
      return (call) => command.call(client, call.numKeys, ...call.args);
    },
    set: (key, value, ttlMs) => (ttlMs === undefined ? client.set(key, value) : client.set(key, value, 'PX', ttlMs)),
    del: (key) => client.del(key),
    // ioredis 5 and 6 (and iovalkey) may each bring their own ReplyError class.
    isReply: (err) => err instanceof Error && err.name === 'ReplyError',
    outageCause: (key) => redisOutageCause(client, cluster?.nodeOf(key)),
    onReady: (listener) => hook('ready', listener),
    onRefresh: (listener) => hook('refresh', listener),
    close() {
      cluster?.close();
      for (const u of unhook.splice(0)) u();
    },
  };
}
