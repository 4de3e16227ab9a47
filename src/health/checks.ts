import type { Cluster, Redis } from 'ioredis';
import { describeConnectionError, hostPort } from '../internal/connection-cause';
import { describeRedisError, redisOutageCause } from '../redis/outage-cause';

/**
 * What {@link postgresCheck} needs of a database pool: a `pg` `Pool` (or `Client`) is one. Typed
 * by shape, so that rampart's types never require `pg` or its types.
 */
export interface QueryablePool {
  query(config: { text: string; query_timeout?: number }): Promise<unknown>;
}

/**
 * The `host:port` a pg pool connects to, from its options (`host`/`port`, else its
 * `connectionString`); `undefined` for a Unix socket or what cannot be read. Never the password.
 */
function postgresEndpoint(pool: unknown): string | undefined {
  const options = (pool as { options?: { host?: unknown; port?: unknown; connectionString?: unknown } } | null)?.options;
  if (options === undefined || options === null) return undefined;
  let host = typeof options.host === 'string' ? options.host : undefined;
  let port = typeof options.port === 'number' || typeof options.port === 'string' ? String(options.port) : undefined;
  if (host === undefined && typeof options.connectionString === 'string') {
    try {
      const url = new URL(options.connectionString);
      host = url.searchParams.get('host') ?? decodeURIComponent(url.hostname);
      port ??= url.searchParams.get('port') ?? (url.port === '' ? undefined : url.port);
    } catch {
      return undefined;
    }
  }
  if (host === undefined || host === '' || host.startsWith('/')) return undefined;
  return hostPort(host.replace(/^\[(.*)\]$/, '$1'), port ?? '5432');
}

/**
 * A one-line cause for `err`, met by a query on `pool` (a `pg` Pool): its errno and the server's
 * address (`connect ECONNREFUSED 127.0.0.1:5432`; `Connection terminated unexpectedly
 * (db.internal:5432)`), never the password.
 */
export function postgresErrorCause(err: unknown, pool: unknown): string {
  return describeConnectionError(err, postgresEndpoint(pool));
}

/**
 * `SELECT 1` on a pg pool, with a client-side query timeout so a hung server frees the
 * connection. A failure names its cause and the server's address (`connect ECONNREFUSED
 * 127.0.0.1:5432`, `timeout exceeded when trying to connect (db.internal:5432)`).
 */
export function postgresCheck(pool: QueryablePool, timeoutMs: number): () => Promise<void> {
  const endpoint = postgresEndpoint(pool);
  return async () => {
    try {
      await pool.query({ text: 'SELECT 1', query_timeout: timeoutMs });
    } catch (err) {
      throw new Error(describeConnectionError(err, endpoint), { cause: err });
    }
  };
}

/** A failure the check itself found (a slot without a master...): its message is the cause. */
class CheckFailure extends Error {}

/**
 * `PING` on a Redis client: the master for standalone and Sentinel; for Cluster, every master
 * that owns slots, after checking that every slot has one (a decision can land on any of them).
 * A failure names its cause when the client's connections said it (a client from
 * `createRedisClient`): `connect ECONNREFUSED 127.0.0.1:6379`, `all sentinels unreachable: …`,
 * `no cluster node answered: …`, rather than what ioredis says of the PING.
 */
export function redisCheck(client: Redis | Cluster): () => Promise<void> {
  const check = redisPing(client);
  return async () => {
    try {
      await check();
    } catch (err) {
      if (err instanceof CheckFailure) throw err;
      throw new Error(describeRedisError(client, err), { cause: err });
    }
  };
}

/** Names the nodes and, where known, why each cannot be reached. */
function nodesWithCause(client: Cluster, nodes: readonly string[]): string {
  return nodes
    .map((node) => {
      const cause = redisOutageCause(client, node);
      return cause === undefined ? node : `${node} (${cause})`;
    })
    .join(', ');
}

function redisPing(client: Redis | Cluster): () => Promise<void> {
  return async () => {
    if ('nodes' in client && typeof (client as Cluster).nodes === 'function' && (client as Cluster).isCluster) {
      const cluster = client as Cluster;
      if (cluster.status !== 'ready') {
        // No slot map yet (no node answered): say why, when the nodes said it.
        const cause = redisOutageCause(cluster);
        if (cause !== undefined) throw new CheckFailure(cause);
      }
      // Every slot must have a master the client is connected to: ioredis drops a dead node
      // from its pool before the slot map is refreshed, so PINGing the known masters alone
      // would pass while a third of the keys have no home.
      const masters = new Map(cluster.nodes('master').map((n) => [`${n.options.host}:${n.options.port}`, n]));
      const owners = new Set<string>();
      for (let slot = 0; slot < 16384; slot++) {
        const owner = cluster.slots[slot]?.[0];
        if (owner === undefined) throw new CheckFailure(`slot ${slot} has no master`);
        owners.add(owner);
      }
      const missing = [...owners].filter((key) => !masters.has(key));
      if (missing.length > 0) throw new CheckFailure(`no connection to master ${nodesWithCause(cluster, missing)}`);
      const replies = await Promise.allSettled([...owners].map((key) => (masters.get(key) as Redis).ping()));
      const failed = [...owners].filter((_, i) => replies[i]?.status === 'rejected');
      if (failed.length > 0) throw new CheckFailure(`PING failed on ${nodesWithCause(cluster, failed)}`);
      return;
    }
    const reply = await (client as Redis).ping();
    if (reply !== 'PONG') throw new CheckFailure(`PING answered ${String(reply)}`);
  };
}
