import { ReplyError, type Cluster, type Redis } from 'ioredis';
import { connectionFailures, describeFailures, oneLine, type ConnectionFailure } from '../internal/connection-cause';

// Why a Redis client cannot serve: the connection-level errors its connections met, kept per
// client so that a command failing with what ioredis says then ("Stream isn't writeable and
// enableOfflineQueue options is false", "Connection is closed.", "Cluster isn't ready...",
// "Failed to refresh slots cache.") can be reported as its cause instead: `connect ECONNREFUSED
// 127.0.0.1:6739`. Everything here runs on a connection event or a failure, never on a command
// that succeeds.

interface Tracker {
  readonly kind: 'standalone' | 'sentinel' | 'cluster';
  /** Standalone: the server's `host:port`. */
  readonly endpoint: string | undefined;
  /** The URL's password: masked wherever a message repeats it. */
  readonly secret: string | undefined;
  /** The master's name (Sentinel). */
  readonly masterName: string | undefined;
  /** The sentinels, in the URL's order. */
  readonly sentinels: readonly string[];
  /** The client's own connection's last failure since it was last ready (standalone, the Sentinel master). */
  own: ConnectionFailure[] | undefined;
  /** Sentinel: no sentinel gave the master's address ("All sentinels are unreachable"), since the last ready. */
  sentinelsFailed: boolean;
  /**
   * Per address: each Cluster node's last failure (until it connects again); each sentinel's
   * failure to give the master's address (until the client is ready).
   */
  readonly nodes: Map<string, ConnectionFailure[]>;
  /** Sentinel: the last connection failure of the watcher on each sentinel (until it connects again). */
  readonly watchers: Map<string, ConnectionFailure[]>;
}

const trackers = new WeakMap<object, Tracker>();
/** What ioredis says of a connection that closed, whatever closed it. */
const CLOSED = 'Connection is closed.';
/** Addresses remembered per client at most (nodes come and go across failovers). */
const MAX_NODES = 64;

function remember(map: Map<string, ConnectionFailure[]>, key: string, failures: ConnectionFailure[]): void {
  const before = map.get(key);
  // ioredis reports a refused node twice: the refusal (errno), then "Connection is closed." for
  // the command that was waiting on it. The first one says why; so does a TLS handshake's
  // failure (a certificate not verified, the server's alert) before the closure it causes.
  if (before !== undefined && before.some((f) => f.errno) && !failures.some((f) => f.errno)) return;
  if (before !== undefined && failures.every((f) => f.what === CLOSED)) return;
  if (before === undefined && map.size >= MAX_NODES) map.delete(map.keys().next().value as string);
  map.set(key, failures);
}

/** Where the sentinel of a `sentinelError` message was, and what it said. */
function sentinelFailure(message: string): [string, ConnectionFailure] | undefined {
  let m = /^failed to connect to sentinel (\S+) because (.*)$/s.exec(message);
  if (m !== null) return [m[1] as string, { what: oneLine(m[2] as string), where: m[1], errno: false }];
  m = /^connected to sentinel (\S+) successfully, but got an invalid reply: (.*)$/s.exec(message);
  if (m !== null)
    return [m[1] as string, { what: `no address for the master (reply: ${oneLine(m[2] as string)})`, where: m[1], errno: false }];
  return undefined;
}

/** What {@link trackOutageCause} needs to know of the client's target. */
export interface TrackedTarget {
  readonly kind: 'standalone' | 'sentinel' | 'cluster';
  readonly host?: string;
  readonly port?: number;
  readonly password?: string | undefined;
  readonly masterName?: string;
  readonly sentinels?: readonly { readonly host: string; readonly port: number }[];
}

/**
 * Starts keeping the connection-level failures of `client` (`createRedisClient` does, before it
 * adds its reporter). A Sentinel client's watchers report theirs through {@link noteSentinelWatcher}.
 */
export function trackOutageCause(client: Redis | Cluster, target: TrackedTarget): void {
  const tracker: Tracker = {
    kind: target.kind,
    endpoint: target.host === undefined || target.port === undefined ? undefined : `${target.host}:${target.port}`,
    secret: target.password === undefined || target.password === '' ? undefined : target.password,
    masterName: target.masterName,
    sentinels: (target.sentinels ?? []).map((s) => `${s.host}:${s.port}`),
    own: undefined,
    sentinelsFailed: false,
    nodes: new Map(),
    watchers: new Map(),
  };
  trackers.set(client, tracker);
  client.on('error', (err: unknown) => noteConnectionError(tracker, err));
  client.on('ready', () => {
    tracker.own = undefined;
    tracker.sentinelsFailed = false;
    if (tracker.kind === 'sentinel') tracker.nodes.clear();
  });
  if (tracker.kind === 'sentinel') {
    client.on('sentinelError', (err: unknown) => {
      const found = sentinelFailure(err instanceof Error ? err.message : String(err));
      if (found !== undefined) remember(tracker.nodes, found[0], [found[1]]);
    });
  }
  if (tracker.kind === 'cluster') {
    const cluster = client as Cluster;
    cluster.on('node error', (err: unknown, key: unknown) => {
      if (typeof key === 'string') remember(tracker.nodes, key, connectionFailures(err, key));
    });
    // A slot-map refresh asks each node on a connection of its own (`duplicate()`), whose
    // errors ioredis drops: the refresh then says only "Connection is closed." for the node.
    // Those connections' errors are the cause; they are taken from there.
    cluster.on('+node', (node: Redis) => {
      const key = `${node.options.host ?? ''}:${node.options.port ?? ''}`;
      node.on('ready', () => tracker.nodes.delete(key));
      const duplicate = node.duplicate;
      node.duplicate = function (this: Redis, ...args: Parameters<Redis['duplicate']>) {
        const copy = duplicate.apply(this, args);
        copy.on('error', (err: unknown) => remember(tracker.nodes, key, connectionFailures(err, key)));
        copy.once('connect', () => tracker.nodes.delete(key));
        return copy;
      };
    });
  }
}

/** An `error` event of the client itself. */
function noteConnectionError(t: Tracker, err: unknown): void {
  if (t.kind === 'cluster') return; // its nodes' events say more
  if (t.kind === 'sentinel' && err instanceof Error && err.message.startsWith('All sentinels are unreachable')) {
    // ioredis says this too when a sentinel did answer and the master it named refused: it
    // reconnects by taking the next sentinel, and there is none. The sentinels failed only if
    // they said so (their `sentinelError`s since the master was last tried).
    if (t.nodes.size > 0) {
      t.sentinelsFailed = true;
      t.own = undefined;
    }
    return;
  }
  t.sentinelsFailed = false;
  // A sentinel answered (this is the master's connection): earlier sentinels' failures are moot.
  if (t.kind === 'sentinel') t.nodes.clear();
  // The Sentinel master's address is not known here; a refusal names it (Node's message does).
  t.own = connectionFailures(err, t.kind === 'sentinel' ? undefined : t.endpoint);
}

/** Tells the tracker of a Sentinel `client` about its watcher on `sentinel` (`host:port`): a failure, or `undefined` once connected. */
export function noteSentinelWatcher(client: object, sentinel: string, err: unknown): void {
  const t = trackers.get(client);
  if (t === undefined) return;
  if (err === undefined) t.watchers.delete(sentinel);
  else remember(t.watchers, sentinel, connectionFailures(err, sentinel));
}

function mask(t: Tracker | undefined, text: string): string {
  const line = oneLine(text);
  return t?.secret === undefined ? line : line.split(t.secret).join('***');
}

function sentinelsCause(t: Tracker): string {
  const failures: ConnectionFailure[] = [];
  const all = [...t.sentinels, ...[...t.nodes.keys()].filter((k) => !t.sentinels.includes(k))];
  for (const s of all) failures.push(...(t.watchers.get(s) ?? t.nodes.get(s) ?? [{ what: 'no answer', where: s, errno: false }]));
  const unreachable = all.every((s) => t.watchers.has(s) || t.nodes.get(s)?.[0]?.what.startsWith('no address') === false);
  const head = unreachable ? 'all sentinels unreachable' : `no sentinel gave the address of master "${t.masterName ?? ''}"`;
  return `${head}: ${describeFailures(failures)}`;
}

/**
 * Why `client` cannot serve now, as far as its connections said (`undefined` when they said
 * nothing, or the client is connected). `node` (`host:port`): on a Cluster that is up, the node a
 * failed command went to.
 */
export function redisOutageCause(client: Redis | Cluster, node?: string): string | undefined {
  const t = trackers.get(client);
  if (t === undefined) return undefined;
  let cause: string | undefined;
  if (t.kind === 'cluster') {
    if (client.status !== 'ready') {
      const failures = [...t.nodes.values()].flat();
      if (failures.length > 0) cause = `no cluster node answered: ${describeFailures(failures)}`;
    } else if (node !== undefined) {
      const failures = t.nodes.get(node);
      if (failures !== undefined) cause = describeFailures(failures);
    }
  } else if (t.own !== undefined) cause = describeFailures(t.own);
  else if (t.sentinelsFailed) cause = sentinelsCause(t);
  return cause === undefined ? undefined : mask(t, cause);
}

/**
 * What to say of `err`, a failed command of `client`: a server's reply (`NOSCRIPT`, `OOM`,
 * `WRONGTYPE`...) as it is; otherwise, when the client's connections said why it cannot serve,
 * that cause (`connect ECONNREFUSED 127.0.0.1:6739`) instead of what ioredis says of the command.
 * Never the URL's password.
 */
export function describeRedisError(client: Redis | Cluster, err: unknown, node?: string): string {
  const t = trackers.get(client);
  if (!(err instanceof ReplyError)) {
    const cause = redisOutageCause(client, node);
    if (cause !== undefined) return cause;
  }
  if (!(err instanceof Error)) return mask(t, String(err));
  // A Cluster's failed refresh carries the last node's error (from a client made elsewhere).
  const last = (err as Error & { lastNodeError?: unknown }).lastNodeError;
  if (last instanceof Error) return mask(t, `${err.message} (last node: ${last.message})`);
  return mask(t, err.message);
}

/**
 * An `error` event of `client` as its reporter should see it: the event's own error when it
 * names its cause (`connect ECONNREFUSED 127.0.0.1:6739`); else (a Sentinel's "All sentinels are
 * unreachable...", a Cluster's "Failed to refresh slots cache.", a timeout without an address) an
 * error whose message is the cause, with the event's error as its `cause`.
 */
export function explainClientError(client: Redis | Cluster, err: Error): Error {
  if (err instanceof ReplyError) return err;
  const cause = redisOutageCause(client);
  if (cause === undefined || cause === oneLine(err.message)) return err;
  return new Error(cause, { cause: err });
}
