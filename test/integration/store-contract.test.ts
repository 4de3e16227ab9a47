import { Redis } from 'ioredis';
import { Redis as Redis5 } from 'ioredis5';
import { createMemoryStore, createRedisStore } from '../../src';
import { storeContract } from '../support/store-contract';
import { TEST_REDIS, TEST_REDIS_URL } from '../support/redis-server';

storeContract('memory', async () => {
  const store = createMemoryStore();
  return { store, close: () => store.close() };
});

storeContract(`redis (standalone, ${TEST_REDIS_URL})`, async () => {
  const client = new Redis({ ...TEST_REDIS, enableOfflineQueue: true });
  const store = createRedisStore({ client });
  return {
    store,
    async close() {
      const keys = await client.keys('rltest:*');
      if (keys.length > 0) await client.del(...keys);
      await store.close();
      await client.quit();
    },
  };
});

// The client a team may already have: ioredis 5 (the devDependency `ioredis5`, npm:ioredis@5).
storeContract(`redis (standalone, ioredis 5, ${TEST_REDIS_URL})`, async () => {
  const client = new Redis5({ ...TEST_REDIS, enableOfflineQueue: true });
  const store = createRedisStore({ client: client as unknown as Redis });
  return {
    store,
    async close() {
      const keys = await client.keys('rltest:*');
      if (keys.length > 0) await client.del(...keys);
      await store.close();
      await client.quit();
    },
  };
});
