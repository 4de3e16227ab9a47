// One Express app of the limiter comparison: the same trivial JSON route behind no limiter,
// express-rate-limit + rate-limit-redis, rate-limiter-flexible (RateLimiterRedis) or rampart's
// token bucket on Redis. The client key comes from the `x-client-key` header.
// env: APP (bare | erl | rlf | rampart), SCENARIO (allow | flood), REDIS_URL, PORT
import { createServer } from 'node:http';
import express, { type RequestHandler } from 'express';
import { rateLimit as expressRateLimit } from 'express-rate-limit';
import { Redis } from 'ioredis';
import { RedisStore, type RedisReply } from 'rate-limit-redis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { createRedisClient, createRedisStore, rateLimit } from '../../src';
import { LIMITS, PREFIXES, type AppName, type Scenario } from '../limits';

const app = (process.env['APP'] ?? 'bare') as AppName;
const scenario = (process.env['SCENARIO'] ?? 'allow') as Scenario;
const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const port = Number(process.env['PORT'] ?? 0);
const limit = LIMITS[scenario];
const clientKey = (req: express.Request): string => req.get('x-client-key') ?? 'none';

function limiter(): RequestHandler | undefined {
  switch (app) {
    case 'bare':
      return undefined;
    case 'erl': {
      // As rate-limit-redis documents it for ioredis: raw commands through `call`.
      const client = new Redis(redisUrl);
      return expressRateLimit({
        windowMs: limit.windowSeconds * 1000,
        limit: limit.amount,
        standardHeaders: 'draft-8',
        legacyHeaders: false,
        keyGenerator: clientKey,
        store: new RedisStore({
          prefix: PREFIXES.erl,
          sendCommand: (command: string, ...args: string[]) => client.call(command, ...args) as Promise<RedisReply>,
        }),
      });
    }
    case 'rlf': {
      // As its docs recommend: no offline queue; a flood is blocked in memory once consumed.
      const client = new Redis(redisUrl, { enableOfflineQueue: false });
      const rlf = new RateLimiterRedis({
        storeClient: client,
        keyPrefix: PREFIXES.rlf,
        points: limit.amount,
        duration: limit.windowSeconds,
        inMemoryBlockOnConsumed: limit.amount,
      });
      // The middleware of its wiki, with the Retry-After it suggests.
      return (req, res, next) => {
        rlf.consume(clientKey(req)).then(
          () => next(),
          (rej: unknown) => {
            if (rej instanceof RateLimiterRes) {
              res.set('Retry-After', String(Math.ceil(rej.msBeforeNext / 1000)));
              res.status(429).json({ error: 'RATE_LIMITED' });
            } else {
              next(rej);
            }
          },
        );
      };
    }
    case 'rampart': {
      // AUTO_PIPELINING=true|false overrides the client's default.
      const pipelining = process.env['AUTO_PIPELINING'];
      const client = createRedisClient(redisUrl, pipelining === undefined ? {} : { autoPipelining: pipelining === 'true' });
      client.on('error', () => undefined);
      return rateLimit({
        store: createRedisStore({ client, maxBatch: Number(process.env['MAX_BATCH'] ?? 128) }),
        prefix: PREFIXES.rampart,
        policies: {
          p: { algorithm: 'token_bucket', rps: limit.amount / limit.windowSeconds, burst: limit.amount, key: clientKey },
        },
      });
    }
  }
}

const server = express();
server.disable('x-powered-by');
server.get('/ready', (_req, res) => {
  res.json({ ok: true });
});
const mw = limiter();
if (mw !== undefined) server.use(mw);
server.get('/json', (_req, res) => {
  res.json({ hello: 'world' });
});
createServer(server).listen(port, '127.0.0.1');
process.once('SIGTERM', () => process.exit(0));
