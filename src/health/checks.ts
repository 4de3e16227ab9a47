import type { Cluster, Redis } from 'ioredis';
import type { Pool, QueryConfig } from 'pg';

/** `SELECT 1` on a pg pool, with a client-side query timeout so a hung server frees the connection. */
export function postgresCheck(pool: Pool, timeoutMs: number): () => Promise<void> {
  return async () => {
    await pool.query({ text: 'SELECT 1', query_timeout: timeoutMs } as QueryConfig);
  };
}

/**
 * `PING` on a Redis client: the master for standalone and Sentinel, every master for Cluster
 * (a decision can land on any of them).
 */
export function redisCheck(client: Redis | Cluster): () => Promise<void> {
  return async () => {
    if ('nodes' in client && typeof (client as Cluster).nodes === 'function' && (client as Cluster).isCluster) {
      const masters = (client as Cluster).nodes('master');
      if (masters.length === 0) throw new Error('no cluster master known');
      const replies = await Promise.allSettled(masters.map((n) => n.ping()));
      const failed = replies
        .map((r, i) => (r.status === 'rejected' ? `${masters[i]?.options.host ?? '?'}:${masters[i]?.options.port ?? '?'}` : undefined))
        .filter((x) => x !== undefined);
      if (failed.length > 0) throw new Error(`PING failed on ${failed.join(', ')}`);
      return;
    }
    const reply = await (client as Redis).ping();
    if (reply !== 'PONG') throw new Error(`PING answered ${String(reply)}`);
  };
}
