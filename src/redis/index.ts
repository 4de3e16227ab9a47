export { REDIS_CLIENT_DEFAULTS, closeRedisClient, createRedisClient } from './create-redis-client';
export type { RedisClientOptions } from './create-redis-client';
export { RedisUrlError, parseRedisUrl } from './redis-url';
export type { RedisTarget } from './redis-url';
