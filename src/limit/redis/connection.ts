import type { Cluster, Redis } from 'ioredis';
import type { ClusterWatch } from './cluster-watch';
import { ioredisConnection } from './ioredis-connection';
import { isNodeRedis, nodeRedisConnection, type NodeRedisClient, type NodeRedisCluster } from './node-redis-connection';
import type { ScriptCall } from './wire';

/** A client the Redis store runs on: ioredis 5 or 6, iovalkey, or node-redis 5 or 6 (a client or a cluster). */
export type RedisStoreClient = Redis | Cluster | NodeRedisClient | NodeRedisCluster;

/**
 * What the Redis store needs of a client, whatever its library: run a script on the node of its
 * first key (loading it again after `NOSCRIPT`), set and delete a key, say why a call failed,
 * hear the client come back, and on Cluster know each slot's owner and hear of changes.
 */
export interface StoreConnection {
  /** The slot map's watch, on Cluster. */
  readonly cluster: ClusterWatch | undefined;
  /** What runs `lua` with a call's keys and arguments (by its SHA, sending the source once after `NOSCRIPT`). */
  script(name: string, lua: string): (call: ScriptCall) => Promise<unknown>;
  set(key: string, value: string, ttlMs: number | undefined): Promise<unknown>;
  del(key: string): Promise<unknown>;
  /** Whether `err` is a server's reply (`NOSCRIPT`, `OOM`, `WRONGTYPE`...), not a connection's failure. */
  isReply(err: unknown): boolean;
  /** Why the client cannot serve `key` now, when its connections said so (never a password). */
  outageCause(key: string): string | undefined;
  /** Calls `listener` each time the whole client is ready again; returns what takes it off. */
  onReady(listener: () => void): () => void;
  /** Cluster: calls `listener` after each refresh of the slot map; returns what takes it off. */
  onRefresh(listener: () => void): () => void;
  close(): void;
}

/** The store's connection on `client`: node-redis by its shape, any other as ioredis (5, 6, iovalkey). */
export function connectionOf(client: RedisStoreClient): StoreConnection {
  return isNodeRedis(client) ? nodeRedisConnection(client) : ioredisConnection(client as Redis | Cluster);
}
