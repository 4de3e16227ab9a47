import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis } from 'ioredis';
import { withTimeout } from '../internal/with-timeout';
import { explainClientError, trackOutageCause } from './outage-cause';
import { parseRedisUrl } from './redis-url';
import { followSentinelMaster } from './sentinel-follow';
import { guardStreams } from './stream-guard';

/** Options of {@link createRedisClient}. */
export interface RedisClientOptions {
  /**
   * Told about connection errors (the client reconnects by itself). Without it, errors are
   * written to stderr as `rampart redis: <message>`, at most one line every
   * {@link REDIS_CLIENT_DEFAULTS.errorLogIntervalMs}, never silently dropped.
   */
  readonly onError?: (err: Error) => void;
  /**
   * Batch commands issued in the same tick into one write (ioredis auto-pipelining). Default
   * {@link REDIS_CLIENT_DEFAULTS.autoPipelining}: off, since the store already sends the
   * decisions of a turn as one call, and the pipelining machinery doubled the client's CPU per
   * command.
   */
  readonly autoPipelining?: boolean;
  /** Time limit to open a connection, ms. Default {@link REDIS_CLIENT_DEFAULTS.connectTimeoutMs}. */
  readonly connectTimeoutMs?: number;
  /**
   * TLS settings for every TLS connection of a `rediss://`, `rediss+sentinel://` or
   * `rediss+cluster://` URL (and of the sentinels when {@link sentinelTls}): `{ ca }` for a
   * private CA, `{ cert, key }` for a client certificate (mutual TLS), `servername`. Passed to
   * Node's `tls.connect`: the server's certificate is verified (Node's default) and there is no
   * fallback to plain text. Ignored for plain URLs.
   */
  readonly tls?: ConnectionOptions;
  /**
   * Sentinel URLs: TLS to the sentinels themselves, with {@link tls}. Default: as the data nodes
   * (`true` for `rediss+sentinel://`, `false` for `redis+sentinel://`).
   */
  readonly sentinelTls?: boolean;
  /** Sentinel URLs: the sentinels' own ACL user, when they require one (the URL's is the data nodes'). */
  readonly sentinelUsername?: string;
  /** Sentinel URLs: the sentinels' own password (`requirepass` or their ACL user's). */
  readonly sentinelPassword?: string;
}

/** How to reach the sentinels (the client's own connections to them and its +switch-master watchers). */
interface SentinelAccess {
  readonly tls: ConnectionOptions | undefined;
  readonly username: string | undefined;
  readonly password: string | undefined;
}

/** Defaults of {@link createRedisClient}. */
export const REDIS_CLIENT_DEFAULTS = Object.freeze({
  autoPipelining: false,
  connectTimeoutMs: 2_000,
  reconnectMaxDelayMs: 100,
  quitTimeoutMs: 1_000,
  /** Without `onError`: the shortest time between two stderr lines about connection errors. */
  errorLogIntervalMs: 10_000,
});

/**
 * The error reporter of a client created without `onError`: one stderr line per
 * `intervalMs` at most (a client reconnecting every 100 ms to a dead server fails ten times a
 * second), with `secrets` (the URL's password, the sentinels' own) masked wherever the message
 * repeats them.
 */
export function stderrErrorReporter(
  secrets: string | undefined | readonly (string | undefined)[],
  intervalMs: number = REDIS_CLIENT_DEFAULTS.errorLogIntervalMs,
  now: () => number = Date.now,
  write: (line: string) => void = (line) => process.stderr.write(line),
): (err: Error) => void {
  const masked = (typeof secrets === 'string' || secrets === undefined ? [secrets] : secrets).filter(
    (x): x is string => x !== undefined && x !== '',
  );
  let last: number | undefined;
  return (err) => {
    const t = now();
    if (last !== undefined && t - last < intervalMs) return;
    last = t;
    let message = err.message.replace(/\s*[\r\n]+\s*/g, ' ');
    for (const secret of masked) message = message.split(secret).join('***');
    write(`rampart redis: ${message}\n`);
  };
}

/**
 * Closes a client politely (`QUIT`, so replies in flight still arrive) but never waits longer
 * than `timeoutMs`: behind a dead link `QUIT` gets no answer, and shutdown must not hang on it.
 * Then drops the connection whatever happened. Resolves `true` when `QUIT` was answered in time.
 */
export async function closeRedisClient(client: Redis | Cluster, timeoutMs: number = REDIS_CLIENT_DEFAULTS.quitTimeoutMs): Promise<boolean> {
  const quit = client.quit().then(
    () => true,
    () => false,
  );
  try {
    return await withTimeout(quit, timeoutMs, () => false);
  } finally {
    client.disconnect();
  }
}

const readonlyReconnect = (err: Error): 2 | false => (err.message.startsWith('READONLY') ? 2 : false);

/**
 * An ioredis client for a rate limiter, from a `REDIS_URL`: fail fast rather than queue
 * (no offline queue, one retry per command), bounded reconnect back-off, reconnect on
 * READONLY (a demoted master). Throws `RedisUrlError` for a URL it cannot use.
 */
export function createRedisClient(url: string, options: RedisClientOptions = {}): Redis | Cluster {
  const target = parseRedisUrl(url);
  const common = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: options.connectTimeoutMs ?? REDIS_CLIENT_DEFAULTS.connectTimeoutMs,
    enableAutoPipelining: options.autoPipelining ?? REDIS_CLIENT_DEFAULTS.autoPipelining,
    // A limiter answers by its fail mode while disconnected, so it reconnects eagerly: a new
    // master (Sentinel) or a restarted server is used within ~100 ms of being reachable.
    retryStrategy: (attempt: number) => Math.min(attempt * 50, REDIS_CLIENT_DEFAULTS.reconnectMaxDelayMs),
    reconnectOnError: readonlyReconnect,
    ...(target.username === undefined ? {} : { username: target.username }),
    ...(target.password === undefined ? {} : { password: target.password }),
  };
  let client: Redis | Cluster;
  if (target.kind === 'standalone') {
    client = new Redis({
      ...common,
      lazyConnect: true,
      host: target.host,
      port: target.port,
      db: target.db,
      ...(target.tls ? { tls: { ...options.tls } } : {}),
    });
  } else if (target.kind === 'sentinel') {
    const access: SentinelAccess = {
      tls: (options.sentinelTls ?? target.tls) ? { ...options.tls } : undefined,
      username: options.sentinelUsername,
      password: options.sentinelPassword,
    };
    client = new Redis({
      ...common,
      lazyConnect: true,
      sentinels: target.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: target.masterName,
      db: target.db,
      role: 'master',
      ...(target.tls ? { tls: { ...options.tls }, enableTLSForSentinelMode: true } : {}),
      ...(access.tls === undefined ? {} : { sentinelTLS: access.tls }),
      ...(access.username === undefined ? {} : { sentinelUsername: access.username }),
      ...(access.password === undefined ? {} : { sentinelPassword: access.password }),
      // ioredis's own detector reconnects on every +switch-master message, including late
      // ones from the other sentinels after it has already moved: see sentinel-follow.ts.
      failoverDetector: false,
      sentinelRetryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    });
    followSentinelMaster(client);
  } else {
    const clusterOptions = {
      redisOptions: { ...common, enableAutoPipelining: false, ...(target.tls ? { tls: { ...options.tls } } : {}) },
      enableOfflineQueue: false,
      // ioredis groups auto-pipelined commands by their first argument, which for a script with a
      // variable key count is the count, not a key: the store batches per slot itself instead.
      enableAutoPipelining: false,
      clusterRetryStrategy: (attempt: number) => Math.min(100 * attempt, 2_000),
      // Short retry delays: a decision already answered by its fail mode should not be charged
      // long after (at most 16 redirections x 50 ms). Fewer redirections made a client with a
      // briefly stale slot map (nodes disagree for a moment after a failover) give up.
      retryDelayOnFailover: 50,
      retryDelayOnClusterDown: 50,
      retryDelayOnTryAgain: 20,
      maxRedirections: 16,
      slotsRefreshInterval: 2_000,
      slotsRefreshTimeout: 2_000,
    };
    client = new Cluster(
      target.nodes.map((n) => ({ host: n.host, port: n.port })),
      clusterOptions,
    );
  }
  // Connection errors are kept (outage-cause.ts) so that readiness, the limiter's failures and
  // the reporter name the cause: `connect ECONNREFUSED 127.0.0.1:6739`, not what ioredis says
  // of the command that could not be sent.
  trackOutageCause(client, target);
  // Before the first connection (standalone and Sentinel are made lazy for this; a Cluster's
  // nodes always are): every socket gets its lasting error listener.
  guardStreams(client);
  if (!(client instanceof Cluster)) client.connect().catch(() => undefined);
  const report = options.onError ?? stderrErrorReporter([target.password, options.sentinelPassword]);
  client.on('error', (err: Error) => report(explainClientError(client, err)));
  return client;
}
