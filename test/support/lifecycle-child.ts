// A server with a lifecycle whose cleanup phases return what real ones return: closeRedisClient's
// Promise<boolean>, nothing, a plain value, a slow Promise<string>, a synchronous throw.
// Argument: a REDIS_URL. Prints `{"ready":true}` once serving, then the lifecycle's log lines, as
// JSON, on stdout.
import { once } from 'node:events';
import { createServer } from 'node:http';
import { closeRedisClient, createLifecycle, createRedisClient, createShutdownGate, type CleanupPhase } from '../../src';

async function main(): Promise<void> {
  const url = process.argv[2];
  if (url === undefined) throw new Error('usage: lifecycle-child <REDIS_URL>');
  const print = (entry: object) => process.stdout.write(`${JSON.stringify(entry)}\n`);
  const redis = createRedisClient(url);
  // No offline queue: a command before `ready` would fail.
  await once(redis, 'ready');
  await redis.ping();
  const ran: string[] = [];
  const cleanup: CleanupPhase[] = [
    { name: 'redis', run: () => closeRedisClient(redis) },
    { name: 'sync', run: () => void ran.push('sync') },
    { name: 'value', run: () => 'not a promise' },
    {
      name: 'slow',
      run: () =>
        new Promise<string>((resolve) =>
          setTimeout(() => {
            ran.push('slow');
            resolve('done');
          }, 200),
        ),
    },
    {
      name: 'throws',
      run: () => {
        throw new Error('sync failure');
      },
    },
    { name: 'after', run: () => print({ ran }) },
  ];
  const server = createServer((_req, res) => res.end('ok'));
  createLifecycle({
    server,
    gate: createShutdownGate(),
    cleanup,
    lingerMs: 0,
    logger: {
      info: (obj, msg) => print({ ...obj, msg }),
      warn: (obj, msg) => print({ ...obj, msg }),
      error: (obj, msg) => print({ ...obj, msg }),
    },
  });
  server.listen(0, '127.0.0.1', () => print({ ready: true }));
}

main().catch((err: unknown) => {
  process.stderr.write(`lifecycle-child: ${String(err)}\n`);
  process.exitCode = 1;
});
