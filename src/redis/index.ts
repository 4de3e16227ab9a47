export { REDIS_CLIENT_DEFAULTS, closeRedisClient, createRedisClient } from './redis-client';
export type { RedisClientOptions } from './redis-client';
export { RedisUrlError, parseRedisUrl } from './redis-url';
export type { RedisTarget } from './redis-url';
