// The final example of docs/migrating.md ("From rate-limiter-flexible"), as code the tests run:
// the lines between `guide:start` and `guide:end` (but those marked `test only`) are the guide's
// own lines (test/unit/repository/docs.test.ts checks that the guide still has them).
import express, { type Express } from 'express';
import { createClient } from 'redis';
import { createRateLimiter, createRedisStore, errorHandler } from '../../src';

/** The guide's app on `redisUrl` under `prefix`, its node-redis client connected; `close()` tears it down. */
export async function rlfMigrationExample(redisUrl: string, prefix: string): Promise<{ app: Express; close(): Promise<void> }> {
  const redis = createClient({ url: redisUrl, disableOfflineQueue: true });
  redis.on('error', () => undefined); // test only
  await redis.connect();
  // guide:start
  const limiter = createRateLimiter({
    store: createRedisStore({ client: redis }),
    prefix, // test only
    policies: {
      api: {
        algorithm: 'sliding_window',
        limit: 10,
        windowSeconds: 1,
        key: 'ip',
        penalty: { denials: 1, withinSeconds: 1, blockSeconds: 60 },
      },
    },
  });
  const app = express();
  app.set('trust proxy', 1);
  app.use(limiter.limit('api'));
  app.get('/things', (_req, res) => res.json([]));
  app.use(errorHandler());
  // guide:end
  return {
    app,
    async close() {
      await limiter.close();
      redis.destroy();
    },
  };
}
