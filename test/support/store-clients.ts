// The clients a Redis store runs on, each opened on a standalone server: ioredis 6 and 5,
// iovalkey, node-redis 6 and 5. Tests that promise something of every client loop over them.
import { Redis } from 'ioredis';
import { Redis as Redis5 } from 'ioredis5';
import Valkey from 'iovalkey';
import { createClient } from 'redis';
import { createClient as createClient5 } from 'redis5';
import type { RedisStoreClient } from '../../src';

export interface OpenedClient {
  readonly client: RedisStoreClient;
  close(): Promise<void>;
}

/** ioredis-shaped clients (6, 5, iovalkey): quit at close. */
function ioredisLike(client: Redis | Redis5 | Valkey): OpenedClient {
  client.on('error', () => undefined);
  return { client, close: async () => void (await client.quit().catch(() => undefined)) };
}

/** node-redis clients (6, 5): connected before use, destroyed at close. */
async function nodeRedis(client: ReturnType<typeof createClient> | ReturnType<typeof createClient5>): Promise<OpenedClient> {
  client.on('error', () => undefined);
  await client.connect();
  return { client, close: async () => void client.destroy() };
}

/** An ACL user to connect as. */
export interface Auth {
  readonly username: string;
  readonly password: string;
}

/** Every client library the store accepts, as `[label, open(host, port, auth?)]`. */
export const STORE_CLIENTS: readonly (readonly [string, (host: string, port: number, auth?: Auth) => Promise<OpenedClient>])[] = [
  ['ioredis 6', async (host, port, auth) => ioredisLike(new Redis({ host, port, ...auth }))],
  ['ioredis 5', async (host, port, auth) => ioredisLike(new Redis5({ host, port, ...auth }))],
  ['iovalkey', async (host, port, auth) => ioredisLike(new Valkey({ host, port, ...auth }))],
  ['node-redis 6', (host, port, auth) => nodeRedis(createClient({ socket: { host, port }, ...auth }))],
  ['node-redis 5', (host, port, auth) => nodeRedis(createClient5({ socket: { host, port }, ...auth }))],
];
