import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { closeRedisClient, createRedisClient } from '../../src';
import { waitUntil } from '../../scripts/wait';
import { TEST_REDIS_URL } from '../support/redis-server';

/** The socket under a ready standalone client. */
const streamOf = (client: Redis) => (client as unknown as { stream: EventEmitter }).stream;

describe('createRedisClient: a connection that errs twice', () => {
  it('a second error on one socket reaches a listener (ioredis listens once): nothing is thrown, the client reconnects', async () => {
    const errors: Error[] = [];
    const client = createRedisClient(TEST_REDIS_URL, { onError: (e) => errors.push(e) }) as Redis;
    try {
      await waitUntil('the client ready', () => Promise.resolve(client.status === 'ready'), 10_000);
      const stream = streamOf(client);
      // The first goes to ioredis, as before; an EventEmitter throws an 'error' nobody listens to.
      assert.doesNotThrow(() => stream.emit('error', Object.assign(new Error('first: handshake failed'), { code: 'EPROTO' })));
      assert.doesNotThrow(() => stream.emit('error', Object.assign(new Error('second: alert from the peer'), { code: 'EPROTO' })));
      assert.ok(
        errors.some((e) => e.message.includes('first')),
        `the first error was reported: ${errors.map((e) => e.message).join('; ')}`,
      );
      (stream as unknown as { destroy(): void }).destroy();
      await waitUntil('a new connection', () => Promise.resolve(client.status === 'ready' && streamOf(client) !== stream), 10_000);
      assert.equal(await client.ping(), 'PONG');
      // The new connection is guarded too.
      assert.doesNotThrow(() => streamOf(client).emit('error', new Error('first on the new socket')));
      assert.doesNotThrow(() => streamOf(client).emit('error', new Error('second on the new socket')));
    } finally {
      await closeRedisClient(client);
    }
  });
});
