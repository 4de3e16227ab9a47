import type { Cluster, Redis } from 'ioredis';
import type { IoredisFamilyClient, StoreConnection } from './connection';
import { ioredisConnection } from './ioredis-connection';
import { isNodeRedis, nodeRedisConnection, type NodeRedisClient, type NodeRedisCluster } from './node-redis-connection';

/** A client the Redis store runs on: ioredis 5 or 6, iovalkey, or node-redis 5 or 6 (a client or a cluster). */
export type RedisStoreClient = Redis | Cluster | IoredisFamilyClient | NodeRedisClient | NodeRedisCluster;

/** The store's connection on `client`: node-redis by its shape, any other as ioredis (6, 5, iovalkey). */
export const connectionOf = (client: RedisStoreClient): StoreConnection =>
  isNodeRedis(client) ? nodeRedisConnection(client) : ioredisConnection(client as Redis | Cluster);
