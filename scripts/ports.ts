import { createServer } from 'node:net';

/**
 * Ports for local servers: below the kernel's ephemeral range (32768+, where outgoing
 * connections get their ports), above common services. A cluster node also binds port+10000
 * (its bus), so cluster nodes take data ports whose bus port is below 32768 too.
 */
export const PORT_RANGE = Object.freeze({ min: 20_000, max: 29_999 });
export const CLUSTER_PORT_RANGE = Object.freeze({ min: 12_000, max: 19_999 });

export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

const taken = new Set<number>();

/**
 * A free port on 127.0.0.1 (and, if `withBus`, port+10000 free too, for a cluster node). A port
 * handed out once by this process is not handed out again, so servers started together never
 * race for the same port.
 */
export async function freePort(withBus = false): Promise<number> {
  const range = withBus ? CLUSTER_PORT_RANGE : PORT_RANGE;
  for (let i = 0; i < 500; i++) {
    const port = range.min + Math.floor(Math.random() * (range.max - range.min + 1));
    if (taken.has(port) || (withBus && taken.has(port + 10_000))) continue;
    if ((await portFree(port)) && (!withBus || (await portFree(port + 10_000)))) {
      taken.add(port);
      if (withBus) taken.add(port + 10_000);
      return port;
    }
  }
  throw new Error('no free port found');
}
