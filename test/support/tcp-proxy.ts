import { createServer, connect, type Server, type Socket } from 'node:net';
import { freePort } from './redis-server';

/**
 * How the proxy treats traffic:
 * - `forward`: passes bytes both ways (after {@link TcpProxy.setLatency}'s delay, if any);
 * - `blackhole`: a partition: stops reading both ways, existing and new connections alike (no
 *   FIN, no RST; bytes wait in the kernel's buffers, as behind a dead link, and flow again,
 *   in order, when the mode goes back to `forward`);
 * - `refuse`: the server is down: new connections are reset at once.
 */
export type ProxyMode = 'forward' | 'blackhole' | 'refuse';

/** A TCP proxy on 127.0.0.1 in front of a real server, for fault injection. */
export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now (pairs). */
  readonly open: number;
  setMode(mode: ProxyMode): void;
  /** Holds every chunk this long before passing it on (0: none). Order is kept. */
  setLatency(ms: number): void;
  /** Resets (RST) every open connection, both sides, wherever their commands are. */
  resetAll(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const port = await freePort();
  let mode: ProxyMode = 'forward';
  let latencyMs = 0;
  let accepted = 0;
  const pairs = new Set<[Socket, Socket]>();

  const pipe = (from: Socket, to: Socket): void => {
    from.on('data', (chunk) => {
      if (latencyMs === 0) to.write(chunk);
      else setTimeout(() => to.writable && to.write(chunk), latencyMs);
    });
  };

  const server: Server = createServer((client) => {
    accepted++;
    client.on('error', () => undefined);
    if (mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    upstream.on('error', () => undefined);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    pipe(client, upstream);
    pipe(upstream, client);
    if (mode === 'blackhole') {
      client.pause();
      upstream.pause();
    }
    client.on('close', () => {
      pairs.delete(pair);
      upstream.destroy();
    });
    upstream.on('close', () => {
      pairs.delete(pair);
      client.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    setMode(m) {
      mode = m;
      for (const [a, b] of pairs) {
        if (m === 'blackhole') {
          a.pause();
          b.pause();
        } else {
          a.resume();
          b.resume();
        }
      }
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    resetAll() {
      for (const [a, b] of [...pairs]) {
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
    },
    async close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
