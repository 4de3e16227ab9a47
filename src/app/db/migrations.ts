import type pg from 'pg';

/** Ordered, append-only. Each runs once, in its own transaction. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE principals (
     id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
     username text NOT NULL UNIQUE,
     password_hash text NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE TABLE sessions (
     token_hash bytea PRIMARY KEY,
     principal_id uuid NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
     created_at timestamptz NOT NULL DEFAULT now(),
     expires_at timestamptz NOT NULL
   );
   CREATE INDEX sessions_expires_at ON sessions (expires_at);
   CREATE TABLE notes (
     id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
     principal_id uuid NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
     title text NOT NULL,
     body text NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now(),
     updated_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE INDEX notes_principal_created ON notes (principal_id, created_at DESC);`,
];

/** An arbitrary constant: the advisory lock that keeps two starting instances from racing. */
const MIGRATION_LOCK = 7_261_994_114;

/**
 * Applies the pending migrations in `schema` (created if missing), or in the connection's
 * `search_path` when no schema is given. Safe to run from several instances at once: they
 * serialise on an advisory lock. Returns how many were applied.
 */
export async function migrate(pool: pg.Pool, schema: string | undefined): Promise<number> {
  const client = await pool.connect();
  try {
    if (schema !== undefined) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await client.query(`SET search_path TO ${schema}`);
    }
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      const done = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
      const applied = new Set(done.rows.map((r) => r.version));
      let count = 0;
      for (const [index, sql] of MIGRATIONS.entries()) {
        const version = index + 1;
        if (applied.has(version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(sql);
          await client.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        }
        count += 1;
      }
      return count;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    if (schema !== undefined) await client.query('RESET search_path').catch(() => undefined);
    client.release();
  }
}
