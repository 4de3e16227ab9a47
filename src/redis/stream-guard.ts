import type { EventEmitter } from 'node:events';
import { Cluster, type Redis } from 'ioredis';

// ioredis listens for a connection's errors with `once` (Redis.js, ioredis 5 and 6): a socket
// that emits a second error, as a TLS socket does when the peer answers a failed handshake with
// an alert, finds no listener, and Node throws it as an uncaught exception that ends the process
// (redis/ioredis#961, never merged). Every connection these clients open gets a lasting listener
// that takes the later errors; the first still reaches ioredis, which reconnects as it does now.

const laterErrors = () => undefined;

interface Connector {
  connect(...args: unknown[]): Promise<unknown>;
}

function guardConnection(redis: Redis): void {
  const connector = (redis as unknown as { connector?: Connector }).connector;
  if (connector === undefined || typeof connector.connect !== 'function') return;
  const connect = connector.connect.bind(connector);
  connector.connect = (...args: unknown[]) =>
    connect(...args).then((stream) => {
      if (typeof (stream as Partial<EventEmitter> | undefined)?.on === 'function') (stream as EventEmitter).on('error', laterErrors);
      return stream;
    });
}

/** Keeps a second error on any connection of `client` (a Cluster's nodes included) from crashing the process. */
export function guardStreams(client: Redis | Cluster): void {
  if (client instanceof Cluster) {
    for (const node of client.nodes('all')) guardConnection(node);
    client.on('+node', guardConnection);
  } else guardConnection(client);
}
