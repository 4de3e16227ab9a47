import { Redis } from 'ioredis';
import { createRedisStore } from '../../src';
import { setPoliciesSuite } from '../support/set-policies-suite';

setPoliciesSuite('redis (standalone, 127.0.0.1:6379)', async () => {
  const client = new Redis({ host: '127.0.0.1', port: 6379, enableOfflineQueue: true });
  const store = createRedisStore({ client });
  return {
    store,
    async cleanup(prefix) {
      // This test's keys only: the database is shared.
      const keys = await client.keys(`${prefix}:*`);
      if (keys.length > 0) await client.del(...keys);
      await store.close();
      await client.quit();
    },
  };
});
