// Raw decisions per second of one limiter's store, no HTTP: `concurrency` callers in one process,
// keys rotating over 10,000 clients. Also the accuracy hammer: with `hammer`, waits for a line on
// stdin, makes `requests` decisions on one key and prints how many were admitted.
// argv: decisions <store> <redisUrl> <durationSec> <concurrency>
//       hammer <store> <redisUrl> <key> <requests> <concurrency> <amount>
import { Redis } from 'ioredis';
import { RedisStore, type RedisReply } from 'rate-limit-redis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { Redis as Redis5 } from 'ioredis5';
import Valkey from 'iovalkey';
import { createClient as createNodeRedis } from 'redis';
import { createClient as createNodeRedis5 } from 'redis5';
import { createRedisClient, createRedisStore, type Check, type RedisStoreClient } from '../src';
import { CLIENT_KEYS, clientKey, PREFIXES, type ClientRow } from './limits';

export type StoreName =
  'rampart' | ClientRow | 'rampart-burst-quota-concurrency' | 'seven-operations-floor' | 'rlf' | 'rlf-autopipelining' | 'erl';

/**
 * A client of `row`'s library on `url`, set as createRedisClient sets ioredis for a limiter
 * (no offline queue), connected; and what closes it.
 */
async function otherClient(row: ClientRow, url: string): Promise<{ client: RedisStoreClient; close(): Promise<void> }> {
  if (row === 'rampart-node-redis6' || row === 'rampart-node-redis5') {
    const c =
      row === 'rampart-node-redis6'
        ? createNodeRedis({ url, disableOfflineQueue: true })
        : createNodeRedis5({ url, disableOfflineQueue: true });
    await c.connect();
    return { client: c, close: async () => void c.destroy() };
  }
  const c = row === 'rampart-ioredis5' ? new Redis5(url, { enableOfflineQueue: false }) : new Valkey(url, { enableOfflineQueue: false });
  await ready(c);
  return { client: c, close: async () => void (await c.quit()) };
}

/** One decision on `key` against a limit of `amount` per hour: true when admitted. */
type Decide = (key: string) => Promise<boolean>;

const HOUR = 3600;

/**
 * The floor under the combined row: a script that runs only the Redis operations a token bucket,
 * a quota and a concurrency lease need (bucket GET + SET, quota INCRBY, lease ZCARD + ZADD +
 * PEXPIRE; ZREM on release), with no decision logic, batched per event-loop turn as rampart's
 * store batches. No implementation on this layout can do a combined request for less.
 */
const FLOOR_DECIDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS, 3 do
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  redis.call('SET', KEYS[i], tat + 1, 'PX', 86400000)
  redis.call('INCRBY', KEYS[i + 1], 1)
  redis.call('ZCARD', KEYS[i + 2])
  redis.call('ZADD', KEYS[i + 2], now + 30000000, ARGV[(i + 2) / 3])
  redis.call('PEXPIRE', KEYS[i + 2], 30000, 'GT')
end
return 1`;
const FLOOR_RELEASE = `for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[i]) end return 1`;

/** Collects the calls of one event-loop turn and runs them as one. */
function perTurn<T>(run: (items: T[]) => Promise<unknown>): (item: T) => Promise<void> {
  let queue: { item: T; done: () => void; fail: (err: unknown) => void }[] = [];
  return (item) =>
    new Promise<void>((done, fail) => {
      if (queue.length === 0) {
        setImmediate(() => {
          const batch = queue;
          queue = [];
          run(batch.map((q) => q.item)).then(
            () => batch.forEach((q) => q.done()),
            (err: unknown) => batch.forEach((q) => q.fail(err)),
          );
        });
      }
      queue.push({ item, done, fail });
    });
}

async function ready(client: { status: string; once(event: 'ready', cb: () => void): unknown; connect?(): Promise<void> }): Promise<void> {
  if (client.status === 'ready') return;
  if (client.status === 'wait') await client.connect?.();
  if ((client.status as string) !== 'ready') await new Promise<void>((resolve) => client.once('ready', resolve));
}

async function open(
  store: StoreName,
  url: string,
  amount: number,
): Promise<{ decide: Decide; settle?: () => Promise<void>; close(): Promise<void> }> {
  switch (store) {
    case 'rampart':
    case 'rampart-ioredis5':
    case 'rampart-iovalkey':
    case 'rampart-node-redis6':
    case 'rampart-node-redis5': {
      let client: RedisStoreClient;
      let closeClient: () => Promise<void>;
      if (store === 'rampart') {
        const c = createRedisClient(url);
        await ready(c);
        client = c;
        closeClient = async () => void (await c.quit());
      } else ({ client, close: closeClient } = await otherClient(store, url));
      const s = createRedisStore({ client, maxBatch: Number(process.env['MAX_BATCH'] ?? 128) });
      // A day to refill: nothing comes back during a run.
      const a = Math.round((86_400 * 1_000_000) / amount);
      return {
        decide: async (key) =>
          (await s.decide([{ key: `${PREFIXES.rampart}:p:{${key}}`, algorithm: 'token_bucket', intervalUs: a, burst: amount, cost: 1 }]))
            .allowed,
        close: closeClient,
      };
    }
    case 'rampart-burst-quota-concurrency': {
      // What one request with three policies costs: a token bucket, a daily quota and a
      // concurrency limit on one identity, decided together, then the lease given back as when
      // the response finishes.
      const client = createRedisClient(url);
      await ready(client);
      const s = createRedisStore({ client, maxBatch: Number(process.env['MAX_BATCH'] ?? 128) });
      const release = s.release?.bind(s) as (checks: readonly Check[]) => Promise<void>;
      const a = Math.round((86_400 * 1_000_000) / amount);
      let lease = 0;
      const releasing = new Set<Promise<void>>();
      return {
        decide: async (key) => {
          const checks: Check[] = [
            { key: `${PREFIXES.rampart}:b:{${key}}`, algorithm: 'token_bucket', intervalUs: a, burst: amount, cost: 1 },
            { key: `${PREFIXES.rampart}:q:{${key}}`, algorithm: 'quota', periodUs: 86_400_000_000, limit: amount, cost: 1 },
            {
              key: `${PREFIXES.rampart}:c:{${key}}`,
              algorithm: 'concurrency',
              leaseUs: 30_000_000,
              limit: 100,
              cost: 1,
              lease: `b${++lease}`,
            },
          ];
          const d = await s.decide(checks);
          // As the middleware does: the request goes on; the release is sent, not waited for.
          if (d.allowed) {
            const r = release(checks);
            releasing.add(r);
            void r.finally(() => releasing.delete(r));
          }
          return d.allowed;
        },
        // The releases still on their way count in the run's time.
        settle: () => Promise.all(releasing).then(() => undefined),
        close: async () => void (await client.quit()),
      };
    }
    case 'seven-operations-floor': {
      const client = createRedisClient(url);
      await ready(client);
      client.defineCommand('floorDecide', { lua: FLOOR_DECIDE });
      client.defineCommand('floorRelease', { lua: FLOOR_RELEASE });
      const call = client as unknown as Record<'floorDecide' | 'floorRelease', (n: number, ...args: string[]) => Promise<unknown>>;
      type Lease = { id: string; lease: string };
      const decide = perTurn<Lease>((ls) => {
        const keys = ls.flatMap(({ id }) => [
          `${PREFIXES.rampart}:b:{${id}}`,
          `${PREFIXES.rampart}:q:{${id}}`,
          `${PREFIXES.rampart}:c:{${id}}`,
        ]);
        return call.floorDecide(keys.length, ...keys, ...ls.map((l) => l.lease));
      });
      const release = perTurn<Lease>((ls) => {
        const keys = ls.map(({ id }) => `${PREFIXES.rampart}:c:{${id}}`);
        return call.floorRelease(keys.length, ...keys, ...ls.map((l) => l.lease));
      });
      let lease = 0;
      const releasing = new Set<Promise<void>>();
      return {
        decide: async (id) => {
          const l = { id, lease: `f${++lease}` };
          await decide(l);
          const r = release(l);
          releasing.add(r);
          void r.finally(() => releasing.delete(r));
          return true;
        },
        settle: () => Promise.all(releasing).then(() => undefined),
        close: async () => void (await client.quit()),
      };
    }
    case 'rlf':
    case 'rlf-autopipelining': {
      const client = new Redis(url, { enableOfflineQueue: false, enableAutoPipelining: store === 'rlf-autopipelining' });
      await ready(client);
      const rlf = new RateLimiterRedis({ storeClient: client, keyPrefix: PREFIXES.rlf, points: amount, duration: HOUR });
      return {
        decide: (key) =>
          rlf.consume(key).then(
            () => true,
            (rej: unknown) => {
              if (rej instanceof RateLimiterRes) return false;
              throw rej;
            },
          ),
        close: async () => void (await client.quit()),
      };
    }
    case 'erl': {
      const client = new Redis(url);
      await ready(client);
      const s = new RedisStore({
        prefix: PREFIXES.erl,
        sendCommand: (command: string, ...args: string[]) => client.call(command, ...args) as Promise<RedisReply>,
      });
      s.init({ windowMs: HOUR * 1000 } as Parameters<RedisStore['init']>[0]);
      return {
        decide: async (key) => (await s.increment(key)).totalHits <= amount,
        close: async () => void (await client.quit()),
      };
    }
  }
}

async function decisions(store: StoreName, url: string, durationSec: number, concurrency: number): Promise<void> {
  const s = await open(store, url, 1_000_000_000);
  let next = 0;
  let count = 0;
  const run = async (until: number) => {
    while (Date.now() < until) {
      await s.decide(clientKey(next++ % CLIENT_KEYS));
      count++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => run(Date.now() + 1000))); // warm-up
  count = 0;
  const started = process.hrtime.bigint();
  const until = Date.now() + durationSec * 1000;
  await Promise.all(Array.from({ length: concurrency }, () => run(until)));
  await s.settle?.();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(`${JSON.stringify({ store, decisionsPerSecond: Math.round(count / seconds), decisions: count })}\n`);
  await s.close();
}

async function hammer(store: StoreName, url: string, key: string, requests: number, concurrency: number, amount: number): Promise<void> {
  const s = await open(store, url, amount);
  let left = requests;
  let admitted = 0;
  let failed = 0;
  process.stdout.write('ready\n');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left > 0) {
        left--;
        try {
          if (await s.decide(key)) admitted++;
        } catch {
          failed++;
        }
      }
    }),
  );
  process.stdout.write(`${JSON.stringify({ admitted, failed })}\n`);
  await s.close();
}

const [command, store = 'rampart', url = '', ...rest] = process.argv.slice(2);
const main =
  command === 'decisions'
    ? decisions(store as StoreName, url, Number(rest[0] ?? 5), Number(rest[1] ?? 100))
    : hammer(store as StoreName, url, rest[0] ?? 'k', Number(rest[1] ?? 1000), Number(rest[2] ?? 50), Number(rest[3] ?? 100));
main.catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
