import { Cluster, Redis } from 'ioredis';
import { parseRedisUrl } from './redis-url';

/** Options of {@link createRedisClient}. */
export interface RedisClientOptions {
  /** Told about connection errors (the client reconnects by itself). */
  readonly onError?: (err: Error) => void;
  /** Batch commands issued in the same tick into one write. Default true. */
  readonly autoPipelining?: boolean;
  /** Time limit to open a connection, ms. Default 2000. */
  readonly connectTimeoutMs?: number;
}

/** Defaults of {@link createRedisClient}. */
export const REDIS_CLIENT_DEFAULTS = Object.freeze({ autoPipelining: true, connectTimeoutMs: 2_000 });

const readonlyReconnect = (err: Error): 2 | false => (err.message.startsWith('READONLY') ? 2 : false);

/**
 * An ioredis client for a rate limiter, from a `REDIS_URL`: fail fast rather than queue
 * (no offline queue, one retry per command), bounded reconnect back-off, reconnect on
 * READONLY (a demoted master). Throws `RedisUrlError` for a URL it cannot use.
 */
export function createRedisClient(url: string, options: RedisClientOptions = {}): Redis | Cluster {
  const target = parseRedisUrl(url);
  const common = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: options.connectTimeoutMs ?? REDIS_CLIENT_DEFAULTS.connectTimeoutMs,
    enableAutoPipelining: options.autoPipelining ?? REDIS_CLIENT_DEFAULTS.autoPipelining,
    retryStrategy: (attempt: number) => Math.min(attempt * 100, 1_000),
    reconnectOnError: readonlyReconnect,
    ...(target.username === undefined ? {} : { username: target.username }),
    ...(target.password === undefined ? {} : { password: target.password }),
  };
  let client: Redis | Cluster;
  if (target.kind === 'standalone') {
    client = new Redis({ ...common, host: target.host, port: target.port, db: target.db, ...(target.tls ? { tls: {} } : {}) });
  } else if (target.kind === 'sentinel') {
    client = new Redis({
      ...common,
      sentinels: target.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: target.masterName,
      db: target.db,
      role: 'master',
      failoverDetector: true,
      sentinelRetryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    });
  } else {
    const clusterOptions = {
      redisOptions: { ...common },
      enableOfflineQueue: false,
      enableAutoPipelining: common.enableAutoPipelining ?? true,
      clusterRetryStrategy: (attempt: number) => Math.min(100 * attempt, 2_000),
      retryDelayOnFailover: 300,
      retryDelayOnClusterDown: 300,
      retryDelayOnTryAgain: 100,
      slotsRefreshInterval: 2_000,
      slotsRefreshTimeout: 2_000,
    };
    client = new Cluster(target.nodes.map((n) => ({ host: n.host, port: n.port })), clusterOptions);
  }
  client.on('error', (err: Error) => options.onError?.(err));
  return client;
}
