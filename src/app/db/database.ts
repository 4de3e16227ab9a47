import { performance } from 'node:perf_hooks';
import pg from 'pg';
import {
  createCircuitBreaker,
  DependencyUnavailableError,
  OptionsError,
  postgresCheck,
  type CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitObserver,
  type HealthCheck,
} from '../../index';

/** Options of {@link createDatabase}. */
export interface DatabaseOptions {
  readonly writeUrl: string;
  /** Reads may go to a replica; defaults to the primary. */
  readonly readUrl?: string;
  /** Connections per pool. Default {@link DATABASE_DEFAULTS.maxConnections}. */
  readonly maxConnections?: number;
  /**
   * Schema to use (created by the migrations). Default: the connection's own `search_path`
   * (which a URL can set with `?options=-c%20search_path%3D<schema>`).
   */
  readonly schema?: string;
  /** Time limit for opening a connection, ms. Default {@link DATABASE_DEFAULTS.connectTimeoutMs}. */
  readonly connectTimeoutMs?: number;
  /**
   * Time limit for opening a connection to the replica, ms: shorter, since a read that cannot
   * reach it soon is better run on the primary than kept waiting (a stopped container's name
   * can take seconds to fail to resolve). Default {@link DATABASE_DEFAULTS.replicaConnectTimeoutMs}
   * (and never above `connectTimeoutMs`).
   */
  readonly replicaConnectTimeoutMs?: number;
  /**
   * Client-side limit on any query, so a hung server frees the connection, ms. Default
   * {@link DATABASE_DEFAULTS.queryTimeoutMs}.
   */
  readonly queryTimeoutMs?: number;
  /** Called with errors of idle clients (a server restart), which must not crash the process. */
  readonly onPoolError?: (err: Error) => void;
  /**
   * After a read fails to reach the replica, reads go straight to the primary this long before
   * the replica is tried again. Default {@link DATABASE_DEFAULTS.replicaRetryMs}.
   */
  readonly replicaRetryMs?: number;
  /**
   * Called when a read could not reach the replica and reads move to the primary: once per
   * back-off period, not per read (the reads of that period are not reported).
   */
  readonly onReplicaFailover?: (err: unknown) => void;
  /**
   * The numbers of the pools' circuit breakers (`db_write`, and `db_read` with a replica): a
   * preset and any number over it. Default the `balanced` preset; `db_read`'s open time is
   * `replicaRetryMs` unless `resetTimeoutMs` is given here.
   */
  readonly breaker?: Omit<CircuitBreakerOptions, 'name' | 'isFailure' | 'observer'>;
  /** Told of the breakers' states (`createMetrics().breakers`). */
  readonly breakerObserver?: CircuitObserver;
}

/** Defaults of {@link createDatabase}. */
export const DATABASE_DEFAULTS = Object.freeze({
  maxConnections: 10,
  connectTimeoutMs: 5_000,
  replicaConnectTimeoutMs: 1_000,
  queryTimeoutMs: 10_000,
  replicaRetryMs: 5_000,
});

/** What readers need: `query(text, values)` of a `pg` pool. */
export interface ReadPool {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** The sample API's database: a pool for writes and a way to read (the primary when no replica). */
export interface Database {
  /** The primary's pool itself: migrations, its health check, an error's address. Queries of requests go through {@link writes}. */
  readonly write: pg.Pool;
  /** Writes (and reads that must see them): the primary through its circuit breaker, `db_write`. */
  readonly writes: ReadPool;
  /**
   * Reads: on the replica through its breaker (`db_read`) when there is one; on the primary
   * (through `db_write`) while the replica is unreachable or its breaker open.
   */
  readonly read: ReadPool;
  /** The replica's own pool (no failover), for its health check; `undefined` without a replica. */
  readonly replica: pg.Pool | undefined;
  /** The pools' circuit breakers. */
  readonly breakers: { readonly write: CircuitBreaker; readonly read: CircuitBreaker | undefined };
  readonly schema: string | undefined;
  /** Ends every pool; a second call waits for the first. */
  close(): Promise<void>;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Node's socket and DNS errors that mean the server could not be reached. */
const NODE_CONNECTION_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH']);
/** `pg`'s own errors for a connection lost or never made. */
const PG_CONNECTION_MESSAGES = new Set([
  'Connection terminated unexpectedly',
  'timeout exceeded when trying to connect',
  'Connection terminated due to connection timeout',
]);
/** SQLSTATE: class 08 (connection exception), admin/crash shutdown, cannot connect now. */
const CONNECTION_SQLSTATE = /^(08[0-9A-Z]{3}|57P0[123])$/;

/**
 * Whether `err` says the server was not reached or the connection was lost (or a circuit breaker
 * refused for that reason), so that the same query may be run elsewhere. SQL errors (syntax,
 * constraints, a statement cancelled) are not.
 */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof DependencyUnavailableError) return true;
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (NODE_CONNECTION_CODES.has(code) || CONNECTION_SQLSTATE.test(code))) return true;
  return PG_CONNECTION_MESSAGES.has(err.message);
}

function createPool(url: string, options: DatabaseOptions, schema: string | undefined, connectTimeoutMs: number): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? DATABASE_DEFAULTS.maxConnections,
    connectionTimeoutMillis: connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    query_timeout: options.queryTimeoutMs ?? DATABASE_DEFAULTS.queryTimeoutMs,
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  });
  pool.on('error', (err) => options.onPoolError?.(err));
  return pool;
}

const unreachable = (err: unknown): boolean => isConnectionError(err) || (err instanceof Error && err.message === 'Query read timeout');
/**
 * What a pool's breaker counts as the database failing: not reached, connection lost, or no
 * answer in time; also when said by a check that wraps the error (`postgresCheck`: its `cause`).
 */
const databaseFailing = (err: unknown): boolean => unreachable(err) || (err instanceof Error && unreachable(err.cause));

/** `pool`'s queries through `breaker`. */
function guarded(pool: pg.Pool, breaker: CircuitBreaker): ReadPool {
  return {
    query: <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => breaker.run(() => pool.query<R>(text, values)),
  };
}

/**
 * Reads on the replica that fall back to the primary: a read that cannot reach the replica (or
 * whose breaker refuses) is run on the primary, and for `retryMs` reads go straight to the
 * primary; then one read tries the replica (the others stay on the primary until it succeeds).
 */
function failoverReads(replica: ReadPool, primary: ReadPool, retryMs: number, onFailover: (err: unknown) => void): ReadPool {
  /** `performance.now()` until which reads skip the replica; 0 while the replica is in use. */
  let skipUntil = 0;
  let probing = false;
  return {
    async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]) {
      if (probing || performance.now() < skipUntil) return primary.query<R>(text, values);
      const probe = skipUntil !== 0;
      probing = probe;
      try {
        const result = await replica.query<R>(text, values);
        if (probe) skipUntil = 0;
        return result;
      } catch (err) {
        if (!isConnectionError(err)) {
          if (probe) skipUntil = 0; // the replica answered
          throw err;
        }
        // Reads already in flight on the replica fail too: one report per period.
        if (performance.now() >= skipUntil) onFailover(err);
        // Refused by the replica's open breaker: tried again once it lets a trial through.
        const refused = err instanceof DependencyUnavailableError && err.code === 'EOPENBREAKER';
        skipUntil = performance.now() + (refused ? err.retryAfterMs : retryMs);
      } finally {
        if (probe) probing = false;
      }
      return primary.query<R>(text, values);
    },
  };
}

/** Creates the pools. Nothing connects until the first query. */
export function createDatabase(options: DatabaseOptions): Database {
  const schema = options.schema;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new OptionsError('database', 'schema', 'a plain lower-case identifier', schema);
  }
  const retryMs = options.replicaRetryMs ?? DATABASE_DEFAULTS.replicaRetryMs;
  if (!Number.isFinite(retryMs) || retryMs < 0) {
    throw new OptionsError('database', 'replicaRetryMs', 'a non-negative number', retryMs);
  }
  const connectMs = options.connectTimeoutMs ?? DATABASE_DEFAULTS.connectTimeoutMs;
  const replicaConnectMs = Math.min(connectMs, options.replicaConnectTimeoutMs ?? DATABASE_DEFAULTS.replicaConnectTimeoutMs);
  if (!Number.isFinite(replicaConnectMs) || replicaConnectMs <= 0) {
    throw new OptionsError('database', 'replicaConnectTimeoutMs', 'a positive number', options.replicaConnectTimeoutMs);
  }
  const write = createPool(options.writeUrl, options, schema, connectMs);
  const replica =
    options.readUrl === undefined || options.readUrl === options.writeUrl
      ? undefined
      : createPool(options.readUrl, options, schema, replicaConnectMs);
  const breakerOf = (name: string, resetTimeoutMs?: number) =>
    createCircuitBreaker({
      ...(resetTimeoutMs === undefined ? {} : { resetTimeoutMs }),
      ...options.breaker,
      name,
      isFailure: databaseFailing,
      ...(options.breakerObserver === undefined ? {} : { observer: options.breakerObserver }),
    });
  const writeBreaker = breakerOf('db_write');
  // The replica's breaker stays open as long as the back-off: reads are on the primary meanwhile.
  const readBreaker = replica === undefined ? undefined : breakerOf('db_read', retryMs);
  const writes = guarded(write, writeBreaker);
  const read: ReadPool =
    replica === undefined || readBreaker === undefined
      ? writes
      : failoverReads(guarded(replica, readBreaker), writes, retryMs, (err) => options.onReplicaFailover?.(err));
  let closing: Promise<void> | undefined;
  return {
    write,
    writes,
    read,
    replica,
    breakers: { write: writeBreaker, read: readBreaker },
    schema,
    close() {
      writeBreaker.close();
      readBreaker?.close();
      closing ??= Promise.all([write.end(), replica?.end()]).then(() => undefined);
      return closing;
    },
  };
}

/**
 * A pool's check that fails at once, naming the breaker, while its breaker is open; half-open,
 * the check is one of the breaker's trial calls (a probe that succeeds closes it, so the pool is
 * back as soon as the probes see it).
 */
function checkThrough(breaker: CircuitBreaker, check: HealthCheck['run']): HealthCheck['run'] {
  return () => {
    if (breaker.state === 'OPEN') return Promise.reject(new Error(`${breaker.name}: circuit breaker open`));
    return breaker.state === 'HALF_OPEN' ? breaker.run(check) : check();
  };
}

/**
 * The readiness checks of a {@link Database}: `db`, the primary (critical: nothing is written
 * without it), and with a replica `db_replica`, not critical (reads fall back to the primary).
 * A pool whose breaker is open fails its check at once (unhealthy for the primary, degraded for
 * the replica), without a query; half-open, the check is a trial call.
 */
export function databaseChecks(db: Database, timeoutMs: number): HealthCheck[] {
  const checks: HealthCheck[] = [{ name: 'db', run: checkThrough(db.breakers.write, postgresCheck(db.write, timeoutMs)), timeoutMs }];
  const readBreaker = db.breakers.read;
  if (db.replica !== undefined && readBreaker !== undefined)
    checks.push({ name: 'db_replica', run: checkThrough(readBreaker, postgresCheck(db.replica, timeoutMs)), timeoutMs, critical: false });
  return checks;
}
