import pg from 'pg';

/** Options of {@link createDatabase}. */
export interface DatabaseOptions {
  readonly writeUrl: string;
  /** Reads may go to a replica; defaults to the primary. */
  readonly readUrl?: string;
  /** Connections per pool. */
  readonly maxConnections?: number;
  /**
   * Schema to use (created by the migrations). Default: the connection's own `search_path`
   * (which a URL can set with `?options=-c%20search_path%3D<schema>`).
   */
  readonly schema?: string;
  /** Time limit for opening a connection. */
  readonly connectTimeoutMs?: number;
  /** Client-side limit on any query, so a hung server frees the connection. Default 10000. */
  readonly queryTimeoutMs?: number;
  /** Called with errors of idle clients (a server restart), which must not crash the process. */
  readonly onPoolError?: (err: Error) => void;
}

/** The sample API's database: a pool for writes and one for reads (the same when no replica). */
export interface Database {
  readonly write: pg.Pool;
  readonly read: pg.Pool;
  readonly schema: string | undefined;
  close(): Promise<void>;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

function createPool(url: string, options: DatabaseOptions, schema: string | undefined): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    query_timeout: options.queryTimeoutMs ?? 10_000,
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  });
  pool.on('error', (err) => options.onPoolError?.(err));
  return pool;
}

/** Creates the pools. Nothing connects until the first query. */
export function createDatabase(options: DatabaseOptions): Database {
  const schema = options.schema;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) throw new TypeError(`schema "${schema}" is not a plain lower-case identifier`);
  const write = createPool(options.writeUrl, options, schema);
  const read =
    options.readUrl === undefined || options.readUrl === options.writeUrl
      ? write
      : createPool(options.readUrl, options, schema);
  return {
    write,
    read,
    schema,
    async close() {
      await Promise.all(read === write ? [write.end()] : [write.end(), read.end()]);
    },
  };
}
