import { Redis } from 'ioredis';
import { createMemoryStore, createRedisStore } from '../../src';
import { storeContract } from '../support/store-contract';

storeContract('memory', async () => {
  const store = createMemoryStore();
  return { store, close: () => store.close() };
});

storeContract('redis (standalone, 127.0.0.1:6379)', async () => {
  const client = new Redis({ host: '127.0.0.1', port: 6379, enableOfflineQueue: true });
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
