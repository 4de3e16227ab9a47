import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/** A Postgres that lives inside this process (PGlite), reachable over TCP on 127.0.0.1. */
export interface EmbeddedPostgres {
  /** A postgres:// URL for `pg`: the same client code path as a real server. */
  readonly url: string;
  /**
   * PGlite is one database session: every TCP connection shares it, so transactions from two
   * connections would interleave. Pools on the embedded server must hold one connection.
   */
  readonly maxConnections: 1;
  close(): Promise<void>;
}

/** Starts PGlite in memory and its wire-protocol socket server on 127.0.0.1, a free port. */
export async function startEmbeddedPostgres(): Promise<EmbeddedPostgres> {
  const db = await PGlite.create();
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 4 });
  try {
    await server.start();
  } catch (err) {
    await db.close();
    throw err;
  }
  const url = `postgres://postgres@${server.getServerConn()}/postgres`;
  return {
    url,
    maxConnections: 1,
    async close() {
      await server.stop();
      await db.close();
    },
  };
}
