import { Redis } from 'ioredis';
import { createRedisStore } from '../../src';
import { setPoliciesSuite } from '../support/set-policies-suite';
import { TEST_REDIS, TEST_REDIS_URL } from '../support/redis-server';

setPoliciesSuite(`redis (standalone, ${TEST_REDIS_URL})`, async () => {
  const client = new Redis({ ...TEST_REDIS, enableOfflineQueue: true });
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
