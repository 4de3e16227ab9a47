import { Redis } from 'ioredis';
import { createRedisStore } from '../../src';
import { operatorSuite } from '../support/operator-suite';
import { STORE_CLIENTS } from '../support/store-clients';
import { TEST_REDIS } from '../support/redis-server';

// The operator's controls on Redis, through each client the store takes.
for (const [label, open] of STORE_CLIENTS) {
  operatorSuite(`redis, ${label}`, async () => {
    const opened = await open(TEST_REDIS.host, TEST_REDIS.port);
    const store = createRedisStore({ client: opened.client });
    return {
      store,
      async close() {
        await store.close();
        await opened.close();
      },
    };
  });
}

after(async () => {
  // The suites' keys (prefix rampart-op-<random>) on the shared server.
  const admin = new Redis(TEST_REDIS);
  const keys = await admin.keys('rampart-op-*');
  if (keys.length > 0) await admin.del(...keys);
  await admin.quit();
});
