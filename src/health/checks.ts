import type { Cluster, Redis } from 'ioredis';

/**
 * What {@link postgresCheck} needs of a database pool: a `pg` `Pool` (or `Client`) is one. Typed
 * by shape, so that rampart's types never require `pg` or its types.
 */
export interface QueryablePool {
  query(config: { text: string; query_timeout?: number }): Promise<unknown>;
}

/** `SELECT 1` on a pg pool, with a client-side query timeout so a hung server frees the connection. */
export function postgresCheck(pool: QueryablePool, timeoutMs: number): () => Promise<void> {
  return async () => {
    await pool.query({ text: 'SELECT 1', query_timeout: timeoutMs });
  };
}

/**
 * `PING` on a Redis client: the master for standalone and Sentinel; for Cluster, every master
 * that owns slots, after checking that every slot has one (a decision can land on any of them).
 */
export function redisCheck(client: Redis | Cluster): () => Promise<void> {
  return async () => {
    if ('nodes' in client && typeof (client as Cluster).nodes === 'function' && (client as Cluster).isCluster) {
      const cluster = client as Cluster;
      // Every slot must have a master the client is connected to: ioredis drops a dead node
      // from its pool before the slot map is refreshed, so PINGing the known masters alone
      // would pass while a third of the keys have no home.
      const masters = new Map(cluster.nodes('master').map((n) => [`${n.options.host}:${n.options.port}`, n]));
      const owners = new Set<string>();
      for (let slot = 0; slot < 16384; slot++) {
        const owner = cluster.slots[slot]?.[0];
        if (owner === undefined) throw new Error(`slot ${slot} has no master`);
        owners.add(owner);
      }
      const missing = [...owners].filter((key) => !masters.has(key));
      if (missing.length > 0) throw new Error(`no connection to master ${missing.join(', ')}`);
      const replies = await Promise.allSettled([...owners].map((key) => (masters.get(key) as Redis).ping()));
      const failed = [...owners].filter((_, i) => replies[i]?.status === 'rejected');
      if (failed.length > 0) throw new Error(`PING failed on ${failed.join(', ')}`);
      return;
    }
    const reply = await (client as Redis).ping();
    if (reply !== 'PONG') throw new Error(`PING answered ${String(reply)}`);
  };
}
