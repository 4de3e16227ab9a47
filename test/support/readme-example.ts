// The README's "Using it in your app" example, as code the tests run on each topology. The
// lines marked `// README` are the README's own lines (test/unit/repository/docs.test.ts checks that the
// README still has them), so the example cannot drift from what is tested.
import express, { type Express } from 'express';
import {
  createMetrics,
  createRateLimiter,
  createRedisClient,
  createRedisStore,
  errorHandler,
  notFoundHandler,
  type RateLimiter,
} from '../../src';

/** The README example on `redisUrl`, with a `login` that answers 200; `close()` tears it down. */
export function readmeExample(
  redisUrl: string,
  prefix: string,
): { app: Express; limiter: RateLimiter; client: ReturnType<typeof createRedisClient>; close(): Promise<void> } {
  const metrics = createMetrics({ processMetrics: false });
  const redis = createRedisClient(redisUrl);
  const limiter = createRateLimiter({
    store: createRedisStore({ client: redis }),
    prefix,
    policies: {
      public: { algorithm: 'token_bucket', rps: 5, burst: 10, key: 'ip' }, // README
      login_ip: { algorithm: 'sliding_window', limit: 20, windowSeconds: 60, key: 'ip' }, // README
      login_credential: { algorithm: 'sliding_window', limit: 5, windowSeconds: 60, key: 'credential' }, // README
    },
    observer: metrics.rateLimit,
  });
  const app = express();
  app.set('trust proxy', true);
  app.use(express.json());
  app.get('/things', limiter.limit('public'), (_req, res) => res.json([])); // README
  app.post('/login', limiter.limit('login_ip', 'login_credential'), (_req, res) => res.json({ ok: true })); // README
  app.use(notFoundHandler());
  app.use(errorHandler());
  return {
    app,
    limiter,
    client: redis,
    async close() {
      await limiter.close();
      redis.disconnect();
    },
  };
}
