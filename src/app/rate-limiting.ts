import type { Logger } from 'pino';
import {
  createMemoryStore,
  createRateLimiter,
  closeRedisClient,
  createRedisClient,
  createRedisStore,
  defaultPolicies,
  loadPolicyFile,
  type Config,
  type Metrics,
  type RateLimiter,
  type RateLimitStore,
} from '../index';
import { DEFAULT_SURFACES } from './app';

/** The sample API's rate limiting: limiter, store and the Redis client it may own. */
export interface RateLimiting {
  readonly limiter: RateLimiter;
  readonly store: RateLimitStore;
  /** The Redis client, when the backend is Redis (for the readiness check). */
  readonly redis: ReturnType<typeof createRedisClient> | undefined;
  /** Closes the limiter, the store and the Redis connection (if any). */
  close(): Promise<void>;
}

/**
 * Builds the limiter the environment describes: memory or Redis store, the default policies
 * or the policies file, the file's surfaces or {@link DEFAULT_SURFACES}. Redis being down
 * does not stop this: decisions fail (and each policy's fail mode applies) until it is back.
 */
export function createRateLimiting(config: Config, logger: Logger, metrics?: Metrics): RateLimiting {
  const rl = config.rateLimit;
  const defaults = defaultPolicies(rl.defaultRps, rl.defaultBurst);
  const set = rl.policiesFile === undefined ? { policies: defaults, surfaces: undefined } : loadPolicyFile(rl.policiesFile, defaults);

  let redis: ReturnType<typeof createRedisClient> | undefined;
  let store: RateLimitStore;
  if (rl.backend === 'redis' && rl.redisUrl !== undefined) {
    let lastReport = 0;
    redis = createRedisClient(rl.redisUrl, {
      onError: (err) => {
        const now = Date.now();
        if (now - lastReport < 5_000) return;
        lastReport = now;
        logger.warn({ err: { message: err.message } }, 'redis connection error');
      },
    });
    store = createRedisStore({ client: redis });
  } else {
    store = createMemoryStore();
  }

  let limiter: RateLimiter;
  try {
    limiter = createRateLimiter({
      store,
      policies: set.policies,
      surfaces: set.surfaces ?? DEFAULT_SURFACES,
      devFailOpen: rl.devFailOpen,
      ...(metrics === undefined ? {} : { observer: metrics.rateLimit }),
      onBackendError: (err) => logger.warn({ err: { message: err.message } }, 'rate limiter backend failed'),
      // The log line of shadow mode: which policies would have refused which route.
      onShadowLimited: (policies, req) =>
        logger.info({ policies, method: req.method, path: req.path }, 'rate limit: shadow policies would have refused'),
    });
  } catch (err) {
    // The policies file was checked when it was loaded: what remains is a bug of the app.
    redis?.disconnect();
    void store.close();
    throw err;
  }

  return {
    limiter,
    store,
    redis,
    async close() {
      await limiter.close();
      await store.close();
      if (redis !== undefined) {
        const answered = await closeRedisClient(redis);
        if (!answered) logger.warn('Redis did not answer QUIT (refused or timed out); connection dropped');
      }
    },
  };
}
