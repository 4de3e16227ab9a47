import { Redis } from 'ioredis';
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
