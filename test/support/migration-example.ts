// The final example of docs/migrating.md ("From express-rate-limit"), as code the tests run:
// the lines between `guide:start` and `guide:end` (but those marked `test only`) are the
// guide's own lines (test/unit/repository/docs.test.ts checks that the guide still has them),
// so the example cannot drift from what is tested.
import express, { type Express } from 'express';
import { createRateLimiter, createRedisClient, createRedisStore, errorHandler } from '../../src';

/** The guide's app on `redisUrl` under `prefix`; `close()` tears it down. */
export function migrationExample(
  redisUrl: string,
  prefix: string,
): { app: Express; redis: ReturnType<typeof createRedisClient>; close(): Promise<void> } {
  const redis = createRedisClient(redisUrl);
  // guide:start
  const limiter = createRateLimiter({
    store: createRedisStore({ client: redis }),
    prefix, // test only
    headers: 'draft-10',
    ipv6Subnet: 56,
    policies: {
      api: { algorithm: 'sliding_window', limit: 100, windowSeconds: 15 * 60, key: 'ip', failMode: 'closed' },
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
    redis,
    async close() {
      await limiter.close();
      redis.disconnect();
    },
  };
}

/** The guide's lines of `source` (after `// guide:start`, or `// guide:start <name>`), trimmed. */
export function guideLines(source: string, name?: string): string[] {
  const lines = source.split('\n');
  const start = lines.findIndex((l) => l.trim() === (name === undefined ? '// guide:start' : `// guide:start ${name}`));
  if (start === -1) return [];
  const end = lines.findIndex((l, i) => i > start && l.includes('// guide:end'));
  return lines
    .slice(start + 1, end)
    .filter((l) => !l.includes('// test only'))
    .map((l) => l.trim());
}
