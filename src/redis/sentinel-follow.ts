import type { ConnectionOptions } from 'node:tls';
import { Redis } from 'ioredis';
import { noteSentinelWatcher } from './outage-cause';

/** What a Sentinel client of ioredis (6, 5) or iovalkey says of its sentinels, in its `options`. */
interface SentinelClientOptions {
  readonly sentinels?: readonly { readonly host?: string; readonly port?: number }[] | null;
  readonly name?: string;
  readonly role?: string;
  readonly sentinelTLS?: ConnectionOptions | null;
  readonly sentinelUsername?: string | null;
  readonly sentinelPassword?: string | null;
  readonly failoverDetector?: boolean;
  readonly tls?: ConnectionOptions | null;
  readonly enableTLSForSentinelMode?: boolean;
  readonly username?: string | null;
  readonly password?: string | null;
  /** ioredis reads it each time it resolves the master's address: the follower wraps it. */
  natMap?: unknown;
}

/** The part of an ioredis-shaped client the follower uses. */
interface FollowedClient {
  readonly options: SentinelClientOptions;
  readonly stream?: { remoteAddress?: string; remotePort?: number };
  readonly status: string;
  connect(): Promise<unknown>;
  disconnect(reconnect?: boolean): void;
  once(event: 'end', listener: () => void): unknown;
}

const followed = new WeakSet<object>();

/** How often a replica being promoted is asked for its role… */
const ROLE_POLL_MS = 20;
/** …for at most this long (a failover that takes longer is left to the sentinels' announcement). */
const ROLE_WATCH_MS = 10_000;

/** Moves `c` to where its master is now: reconnects at once if it is elsewhere or waiting to retry. */
function moveNow(c: FollowedClient, host: string, port: number): void {
  if (c.status !== 'ready') {
    // Reconnecting because the old master died: try every 20 ms for a second instead of
    // waiting for the next attempt. The sentinel the client asks may learn of the switch a
    // little after the one that announced it. A later scheduled attempt finds the client
    // connected and does nothing.
    const until = Date.now() + 1_000;
    const attempt = () => {
      if (c.status === 'ready' || c.status === 'end' || Date.now() > until) return;
      if (c.status === 'reconnecting') c.connect().catch(() => undefined);
      setTimeout(attempt, ROLE_POLL_MS).unref();
    };
    attempt();
    return;
  }
  if (c.stream?.remotePort === port && c.stream.remoteAddress === host) return;
  c.disconnect(true);
}

/**
 * Moves a Sentinel client (ioredis 6 or 5, iovalkey: its master's name and sentinels are read
 * from its options) to the new master as soon as any sentinel announces it (`+switch-master`):
 * when it is still connected to another address (a forced failover leaves the old master running,
 * and without this the client would keep writing to it until Sentinel demotes it, ~10 s later), or
 * when it is waiting between reconnect attempts because the old master died (instead of its next
 * attempt, up to its back-off later); and, while the sentinels are still promoting a replica, as
 * soon as the replica itself says it is master. Once per client; the watchers end with the client. A client
 * that is not a Sentinel master client, or that runs ioredis's own `failoverDetector`, is left as
 * it is. Returns whether it follows.
 */
export function followSentinelMaster(client: object): boolean {
  const c = client as FollowedClient;
  const o = c.options;
  if (followed.has(client)) return true;
  if (o === undefined || !Array.isArray(o.sentinels) || o.sentinels.length === 0 || o.name === undefined) return false;
  if ((o.role !== undefined && o.role !== 'master') || o.failoverDetector === true) return false;
  followed.add(client);
  const masterName = o.name;
  // While a replica is being promoted, the address the sentinels give out stays the old master's
  // until a sentinel's next INFO of the replica sees it master (up to a second later): the
  // follower asks the replica itself every 20 ms, and from its first "master" maps the old
  // address to the new one in what the client resolves (its natMap, the user's own kept), until
  // the sentinels announce the switch.
  const userNatMap = o.natMap;
  let early: { from: string; to: { host: string; port: number } } | undefined;
  o.natMap = (key: string): unknown => {
    if (early !== undefined && key === early.from) return early.to;
    if (typeof userNatMap === 'function') return (userNatMap as (k: string) => unknown)(key);
    if (userNatMap !== null && typeof userNatMap === 'object') return (userNatMap as Record<string, unknown>)[key];
    return undefined;
  };
  let watching: string | undefined;
  const watchPromotion = (host: string, port: number, from: string) => {
    const to = `${host}:${port}`;
    if (watching === to) return;
    watching = to;
    const tls = o.enableTLSForSentinelMode === true && o.tls != null ? { tls: { ...o.tls } } : {};
    const probe = new Redis({
      host,
      port,
      ...tls,
      ...(o.username == null ? {} : { username: o.username }),
      ...(o.password == null ? {} : { password: o.password }),
      enableOfflineQueue: true,
      maxRetriesPerRequest: 0,
      connectTimeout: 1_000,
      retryStrategy: () => ROLE_POLL_MS,
    });
    probe.on('error', () => undefined);
    const until = Date.now() + ROLE_WATCH_MS;
    const done = () => {
      if (watching === to) watching = undefined;
      probe.disconnect();
    };
    const ask = () => {
      if (watching !== to || c.status === 'end' || Date.now() > until) return done();
      probe.call('ROLE').then(
        (role) => {
          if (!Array.isArray(role) || role[0] !== 'master') return void setTimeout(ask, ROLE_POLL_MS).unref();
          early = { from, to: { host, port } };
          done();
          moveNow(c, host, port);
        },
        () => void setTimeout(ask, ROLE_POLL_MS).unref(),
      );
    };
    ask();
  };
  const watchers = o.sentinels.map((s) => {
    const host = s.host ?? '127.0.0.1';
    const port = s.port ?? 26379;
    const w = new Redis({
      host,
      port,
      ...(o.sentinelTLS == null ? {} : { tls: { ...o.sentinelTLS } }),
      ...(o.sentinelUsername == null ? {} : { username: o.sentinelUsername }),
      ...(o.sentinelPassword == null ? {} : { password: o.sentinelPassword }),
      // Queued until connected; ioredis subscribes again after every reconnect.
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      retryStrategy: (attempt: number) => Math.min(attempt * 200, 2_000),
    });
    // Each watcher's connection errors name why its sentinel cannot be reached (for a client of
    // createRedisClient; the client's own sentinel connections keep theirs to themselves).
    const address = `${host}:${port}`;
    w.on('error', (err: unknown) => noteSentinelWatcher(client, address, err));
    w.on('ready', () => noteSentinelWatcher(client, address, undefined));
    w.on('message', (channel: string, message: string) => {
      const words = message.split(' ');
      if (channel === '+switch-master') {
        // <name> <old host> <old port> <new host> <new port>
        const [name, , , newHost, newPort] = words;
        if (name !== masterName) return;
        early = undefined;
        moveNow(c, newHost as string, Number(newPort));
        return;
      }
      // The leader has told a replica to become master:
      // slave <name> <host> <port> @ <master name> <old host> <old port>
      const [kind, , host, port, , name, oldHost, oldPort] = words;
      if (kind !== 'slave' || name !== masterName) return;
      watchPromotion(host as string, Number(port), `${oldHost}:${oldPort}`);
    });
    w.subscribe('+switch-master', '+failover-state-wait-promotion').catch(() => undefined);
    return w;
  });
  c.once('end', () => {
    for (const w of watchers) w.disconnect();
  });
  return true;
}
