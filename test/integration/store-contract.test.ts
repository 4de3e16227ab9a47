import { Redis } from 'ioredis';
import { createMemoryStore, createRedisStore } from '../../src';
import { storeContract } from '../support/store-contract';
import { STORE_CLIENTS } from '../support/store-clients';
import { TEST_REDIS, TEST_REDIS_URL } from '../support/redis-server';

storeContract('memory', async () => {
  const store = createMemoryStore();
  return { store, close: () => store.close() };
});

// Every client a team may already have, on the shared test server: ioredis 6 and 5, iovalkey,
// node-redis 6 and 5. The keys the contract made are deleted at the end.
for (const [label, open] of STORE_CLIENTS) {
  storeContract(`redis (standalone, ${label}, ${TEST_REDIS_URL})`, async () => {
    const opened = await open(TEST_REDIS.host, TEST_REDIS.port);
    const store = createRedisStore({ client: opened.client });
    return {
      store,
      async close() {
        const admin = new Redis(TEST_REDIS);
        const keys = await admin.keys('rltest:*');
        if (keys.length > 0) await admin.del(...keys);
        await admin.quit();
        await store.close();
        await opened.close();
      },
    };
  });
}
