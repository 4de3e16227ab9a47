import { Redis } from 'ioredis';
import { Redis as Redis5 } from 'ioredis5';
import { createMemoryStore, createRedisStore } from '../../src';
import { storeContract } from '../support/store-contract';
import { TEST_REDIS, TEST_REDIS_URL } from '../support/redis-server';

storeContract('memory', async () => {
  const store = createMemoryStore();
  return { store, close: () => store.close() };
});

/** A Redis store on `client` (the shared test server), its keys deleted and the client quit at the end. */
function onStandalone(client: Redis | Redis5) {
  const store = createRedisStore({ client: client as Redis });
  return {
    store,
    async close() {
      const keys = await client.keys('rltest:*');
      if (keys.length > 0) await client.del(...keys);
      await store.close();
      await client.quit();
    },
  };
}

storeContract(`redis (standalone, ${TEST_REDIS_URL})`, async () => onStandalone(new Redis({ ...TEST_REDIS, enableOfflineQueue: true })));

// The client a team may already have: ioredis 5 (the devDependency `ioredis5`, npm:ioredis@5).
storeContract(`redis (standalone, ioredis 5, ${TEST_REDIS_URL})`, async () =>
  onStandalone(new Redis5({ ...TEST_REDIS, enableOfflineQueue: true })),
);
