// A separate process hammering one bucket: prints how many of its decisions were admitted.
// argv: redisUrl key requests concurrency rps burst
import { Redis } from 'ioredis';
import { createRedisStore } from '../../src';

async function main(): Promise<void> {
  const [url = '', key = '', requests = '0', concurrency = '1', rps = '1', burst = '1'] = process.argv.slice(2);
  const client = new Redis(url);
  const store = createRedisStore({ client });
  const check = { key, algorithm: 'token_bucket' as const, intervalUs: Math.round(1_000_000 / Number(rps)), burst: Number(burst), cost: 1 };
  let left = Number(requests);
  let admitted = 0;
  // Wait for the go signal on stdin so that every process starts together.
  await new Promise((resolve) => process.stdin.once('data', resolve));
  await Promise.all(
    Array.from({ length: Number(concurrency) }, async () => {
      while (left > 0) {
        left--;
        if ((await store.decide([check])).allowed) admitted++;
      }
    }),
  );
  process.stdout.write(`${admitted}\n`);
  await client.quit();
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exitCode = 1;
});
