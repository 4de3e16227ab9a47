import assert from 'node:assert/strict';
import type { Express } from 'express';
import pg from 'pg';
import request from 'supertest';
import { createHealth, loadConfig } from '../../src';
import { createApp } from '../../src/app/app';
import { createDatabase, DATABASE_DEFAULTS, databaseChecks, isConnectionError, type Database } from '../../src/app/db/database';
import { migrate } from '../../src/app/db/migrations';
import { createLogger } from '../../src/app/logger';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from '../support/postgres';
import { freePort } from '../support/redis-server';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Short, so that the test sees the replica tried again. */
// Long enough for the reads of the back-off test to fit inside it on a busy machine.
const RETRY_MS = 2_500;
/** The notes list's SQL, as pg_stat_activity shows it. */
const LIST_NOTES_SQL = '%FROM notes WHERE principal_id = $1 ORDER BY%';

/**
 * The sample API with a read replica that goes away. The "replica" is the test Postgres itself
 * behind a TCP proxy (and the primary behind another), told apart by `application_name`: which
 * server ran a read is what pg_stat_activity says its connections ran.
 */
describe('sample API: reads fail over from a lost replica to the primary', function () {
  this.timeout(60_000);
  const pgUrl = new URL(TEST_DATABASE_URL);
  let schema: TestSchema;
  let admin: pg.Client;
  const opened: Array<{ db: Database; proxies: TcpProxy[] }> = [];

  /** `schema.url` through `port`, with connections named `name`. */
  function urlVia(port: number, name: string): string {
    const url = new URL(schema.url);
    url.port = String(port);
    return `${url.toString()}&application_name=${name}`;
  }

  /** A database whose primary and replica are each behind a proxy (or the replica at `replicaPort`). */
  async function open(replicaPort?: number, connectTimeoutMs: number | undefined = 1000) {
    const primaryProxy = await startTcpProxy(Number(pgUrl.port || 5432), pgUrl.hostname);
    const replicaProxy = await startTcpProxy(Number(pgUrl.port || 5432), pgUrl.hostname);
    const replicaName = `${schema.name}_r${opened.length}`;
    const failovers: unknown[] = [];
    const db = createDatabase({
      writeUrl: urlVia(primaryProxy.port, `${schema.name}_p${opened.length}`),
      readUrl: urlVia(replicaPort ?? replicaProxy.port, replicaName),
      schema: schema.name,
      maxConnections: 4,
      ...(connectTimeoutMs === undefined ? {} : { connectTimeoutMs }),
      replicaRetryMs: RETRY_MS,
      onReplicaFailover: (err) => failovers.push(err),
      onPoolError: () => undefined,
    });
    opened.push({ db, proxies: [primaryProxy, replicaProxy] });
    const health = createHealth({ checks: databaseChecks(db, 500), cacheMs: 0 });
    const app = createApp({
      config: loadConfig({}),
      db,
      logger: createLogger('silent'),
      health,
      version: 'test',
      requestDeadlineMs: 10_000,
    });
    return { db, app, primaryProxy, replicaProxy, replicaName, failovers };
  }

  /** Server time now, to compare with pg_stat_activity.query_start. */
  async function serverNow(): Promise<Date> {
    return (await admin.query<{ t: Date }>('SELECT clock_timestamp() AS t')).rows[0]?.t as Date;
  }

  /** How many connections named `name` started the notes list at or after `since` (a pool reuses one). */
  async function listsRunBy(name: string, since: Date): Promise<number> {
    const { rows } = await admin.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query_start >= $2 AND query LIKE $3',
      [name, since, LIST_NOTES_SQL],
    );
    return rows[0]?.n ?? 0;
  }

  async function userWithNote(app: Express, username: string): Promise<{ auth: { Authorization: string }; id: string }> {
    const password = 'correct horse battery';
    assert.equal((await request(app).post('/v1/auth/register').send({ username, password })).status, 201);
    const login = await request(app).post('/v1/auth/login').send({ username, password });
    const auth = { Authorization: `Bearer ${login.body.token as string}` };
    const note = await request(app).post('/v1/notes').set(auth).send({ title: 'written on the primary', body: username });
    assert.equal(note.status, 201);
    return { auth, id: note.body.id as string };
  }

  async function assertListed(app: Express, auth: { Authorization: string }, id: string): Promise<void> {
    const list = await request(app).get('/v1/notes').set(auth);
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(
      list.body.notes.map((n: { id: string }) => n.id),
      [id],
    );
  }

  before(async () => {
    schema = await createTestSchema('read_replica');
    admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    const db = createDatabase({ writeUrl: schema.url, schema: schema.name, maxConnections: 1 });
    try {
      assert.equal(await migrate(db.write, db.schema), 1);
    } finally {
      await db.close();
    }
  });
  afterEach(async () => {
    for (const { db, proxies } of opened.splice(0)) {
      await db.close();
      for (const p of proxies) await p.close();
    }
  });
  after(async () => {
    await admin?.end();
    await schema?.drop();
  });

  it('replica stopped mid-test: reads answer from the primary, readiness is 200 degraded, reads go back to the replica after the back-off', async () => {
    const { app, replicaProxy, replicaName, failovers } = await open();
    const { auth, id } = await userWithNote(app, 'replica-user');

    // Replica up: the list runs on the replica's connections.
    let since = await serverNow();
    await assertListed(app, auth, id);
    assert.equal(await listsRunBy(replicaName, since), 1, 'the read ran on the replica');
    assert.deepEqual((await request(app).get('/health/ready')).body, { status: 'healthy', db: 'connected', db_replica: 'connected' });

    // Replica down: open connections reset, new ones refused.
    replicaProxy.setMode('refuse');
    replicaProxy.resetAll();
    await sleep(50);
    await assertListed(app, auth, id);
    assert.equal(failovers.length, 1, 'the failover was reported');
    assert.ok(isConnectionError(failovers[0]), String(failovers[0]));
    const failedAt = performance.now();

    // During the back-off reads go straight to the primary: the replica is not even dialled.
    const dialled = replicaProxy.accepted;
    for (let i = 0; i < 5; i++) {
      await assertListed(app, auth, id);
      const one = await request(app).get(`/v1/notes/${id}`).set(auth);
      assert.equal(one.status, 200);
      assert.equal(one.body.body, 'replica-user');
    }
    // The premise of the next assertion (the back-off is long enough for this on a busy machine).
    assert.ok(performance.now() - failedAt < RETRY_MS, 'the reads above ran within the back-off');
    assert.equal(replicaProxy.accepted, dialled, 'no connection to the replica during the back-off');
    assert.equal(failovers.length, 1, 'one report per back-off period, not per read');

    const ready = await request(app).get('/health/ready');
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.equal(ready.body.status, 'degraded');
    assert.equal(ready.body.db, 'connected');
    assert.equal(ready.body.db_replica, 'disconnected');
    assert.deepEqual(Object.keys(ready.body.error), ['db_replica']);
    assert.equal(typeof ready.body.error.db_replica, 'string');

    // The back-off passes with the replica still down: it is tried (and given up) again.
    await sleep(RETRY_MS + 50);
    const tried = replicaProxy.accepted;
    await assertListed(app, auth, id);
    assert.ok(replicaProxy.accepted > tried, 'the replica was tried again');
    assert.equal(failovers.length, 2, 'a new back-off period, a new report');

    // Replica back: after the back-off, reads run on it again.
    replicaProxy.setMode('forward');
    await sleep(RETRY_MS + 50);
    for (let i = 0; i < 2; i++) {
      since = await serverNow();
      await assertListed(app, auth, id);
      assert.equal(await listsRunBy(replicaName, since), 1, `read ${i + 1} ran on the replica`);
    }
    assert.equal(failovers.length, 2);
    assert.deepEqual((await request(app).get('/health/ready')).body, { status: 'healthy', db: 'connected', db_replica: 'connected' });
  });

  it('replica stopped under concurrent reads: its breaker (db_read) opens, reads stay 200 on the primary, readiness degraded naming it; the replica back, reads return within the back-off and a trial, readiness healthy', async () => {
    const { db, app, replicaProxy, replicaName } = await open();
    const { auth, id } = await userWithNote(app, 'breaker-reader');
    replicaProxy.setMode('refuse');
    replicaProxy.resetAll();
    // Eight reads in flight at once, all dialling the replica before the first fails: their failures open its breaker.
    const reads = await Promise.all(Array.from({ length: 8 }, () => db.read.query<{ one: number }>('SELECT 1 AS one')));
    assert.deepEqual(
      reads.map((r) => r.rows[0]?.one),
      Array.from({ length: 8 }, () => 1),
      'every read answered, from the primary',
    );
    assert.equal(db.breakers.read?.state, 'OPEN');
    assert.equal(db.breakers.write.state, 'CLOSED', "the primary's breaker is untouched");
    const ready = await request(app).get('/health/ready');
    assert.deepEqual([ready.status, ready.body.status, ready.body.error?.db_replica], [200, 'degraded', 'db_read: circuit breaker open']);
    await assertListed(app, auth, id);

    replicaProxy.setMode('forward');
    const back = performance.now();
    let onReplica = false;
    while (!onReplica && performance.now() - back < RETRY_MS + 5_000) {
      const since = await serverNow();
      await assertListed(app, auth, id);
      onReplica = (await listsRunBy(replicaName, since)) === 1;
      if (!onReplica) await sleep(100);
    }
    const ms = performance.now() - back;
    process.stdout.write(`      reads back on the replica ${Math.round(ms)} ms after it returned (back-off ${RETRY_MS} ms)\n`);
    assert.ok(onReplica, 'reads went back to the replica');
    assert.equal(db.breakers.read?.state, 'CLOSED');
    assert.deepEqual((await request(app).get('/health/ready')).body, { status: 'healthy', db: 'connected', db_replica: 'connected' });
  });

  it('replica at a closed port: reads answer from the primary, readiness 200 degraded; the primary down is 503; close() ends both pools once', async () => {
    const closedPort = await freePort();
    const { db, app, primaryProxy, failovers } = await open(closedPort);
    const { auth, id } = await userWithNote(app, 'no-replica-user');
    for (let i = 0; i < 3; i++) await assertListed(app, auth, id);
    assert.equal(failovers.length, 1);
    assert.equal((failovers[0] as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    const ready = await request(app).get('/health/ready');
    assert.equal(ready.status, 200);
    assert.deepEqual([ready.body.status, ready.body.db, ready.body.db_replica], ['degraded', 'connected', 'disconnected']);
    assert.match(ready.body.error.db_replica, /ECONNREFUSED/);

    primaryProxy.setMode('refuse');
    primaryProxy.resetAll();
    const down = await request(app).get('/health/ready');
    assert.equal(down.status, 503, JSON.stringify(down.body));
    assert.deepEqual([down.body.status, down.body.db, down.body.db_replica], ['unhealthy', 'disconnected', 'disconnected']);
    assert.deepEqual(Object.keys(down.body.error).sort(), ['db', 'db_replica']);

    // close() ends both pools, once however often it is called.
    await Promise.all([db.close(), db.close()]);
    assert.deepEqual([db.write.ended, db.replica?.ended], [true, true]);
  });

  it('a replica that never answers a new connection: the read runs on the primary after the replica connect timeout (1 s), not the 5 s one', async () => {
    assert.deepEqual([DATABASE_DEFAULTS.connectTimeoutMs, DATABASE_DEFAULTS.replicaConnectTimeoutMs], [5_000, 1_000]);
    const { app, replicaProxy, failovers } = await open(undefined, undefined);
    const { auth, id } = await userWithNote(app, 'silent-replica-user');
    await assertListed(app, auth, id);
    // The replica's connections go, and a new one is accepted but never answered (as when its
    // name takes seconds to fail to resolve).
    replicaProxy.setMode('blackhole');
    replicaProxy.resetAll();
    await sleep(50);
    const t0 = performance.now();
    await assertListed(app, auth, id);
    const ms = performance.now() - t0;
    // After the replica's 1 s connect timeout, and before the 5 s one could have fired.
    assert.ok(ms >= 900 && ms < DATABASE_DEFAULTS.connectTimeoutMs, `answered from the primary in ${Math.round(ms)} ms`);
    assert.equal(failovers.length, 1);
    assert.match(String(failovers[0]), /timeout/i);
  });

  it('a SQL error on the replica is not retried on the primary, nor does it start a back-off', async () => {
    const { db, replicaProxy, failovers } = await open();
    const replica = db.replica as pg.Pool;
    const runs = { primary: 0, replica: 0 };
    // A pool emits `acquire` each time a query takes a connected client from it.
    db.write.on('acquire', () => runs.primary++);
    replica.on('acquire', () => runs.replica++);

    await assert.rejects(db.read.query('SELEC 1'), { code: '42601' });
    assert.deepEqual(runs, { primary: 0, replica: 1 }, 'run once, on the replica');
    assert.equal((await db.read.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);
    assert.deepEqual(runs, { primary: 0, replica: 2 }, 'no back-off: the next read is on the replica');
    assert.equal(failovers.length, 0);

    // The counters see a retry when there is one: a connection error is retried on the primary.
    replicaProxy.setMode('refuse');
    replicaProxy.resetAll();
    await sleep(50);
    const dialled = replicaProxy.accepted;
    assert.equal((await db.read.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);
    assert.ok(replicaProxy.accepted > dialled, 'the replica was tried first');
    assert.deepEqual(runs, { primary: 1, replica: 2 }, 'its connection failed; the read ran on the primary');
    assert.equal(failovers.length, 1);

    // During the back-off a SQL error comes from the primary, once.
    await assert.rejects(db.read.query('SELEC 1'), { code: '42601' });
    assert.deepEqual(runs, { primary: 2, replica: 2 });
  });
});
