import { createDatabase } from '../../src/app/db/database';
import { startEmbeddedPostgres } from '../../src/app/db/embedded-postgres';
import { createTestSchema } from '../support/postgres';
import { sampleApiSuite } from '../support/sample-api-suite';

sampleApiSuite('real Postgres', async () => {
  const schema = await createTestSchema('sample_api');
  const db = createDatabase({ writeUrl: schema.url, schema: schema.name, maxConnections: 4 });
  return {
    db,
    async close() {
      await db.close();
      await schema.drop();
    },
  };
});

sampleApiSuite('embedded Postgres (PGlite)', async () => {
  const embedded = await startEmbeddedPostgres();
  const db = createDatabase({ writeUrl: embedded.url, maxConnections: embedded.maxConnections });
  return {
    db,
    async close() {
      await db.close();
      await embedded.close();
    },
  };
});
