import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The real Postgres the integration tests use (CI starts it on 127.0.0.1:5432). */
export const TEST_DATABASE_URL = process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A schema owned by one test file, dropped at the end: the shared database stays usable. */
export interface TestSchema {
  /** A URL whose connections use this schema (`options=-c search_path=...`). */
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

export async function createTestSchema(prefix: string): Promise<TestSchema> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA ${name}`);
  } finally {
    await admin.end();
  }
  const separator = TEST_DATABASE_URL.includes('?') ? '&' : '?';
  return {
    url: `${TEST_DATABASE_URL}${separator}options=${encodeURIComponent(`-c search_path=${name}`)}`,
    name,
    async drop() {
      const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}
