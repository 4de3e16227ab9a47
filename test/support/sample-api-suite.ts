import assert from 'node:assert/strict';
import type { Express } from 'express';
import request from 'supertest';
import { createHealth, loadConfig } from '../../src';
import { createApp } from '../../src/app/app';
import { databaseChecks, type Database } from '../../src/app/db/database';
import { migrate } from '../../src/app/db/migrations';
import { createLogger } from '../../src/app/logger';
import { TEST_DEADLINE_ENV } from './deadline';

/** A database for one run of the suite, and how to tear it down. */
export interface SuiteDatabase {
  readonly db: Database;
  close(): Promise<void>;
}

function assertErrorBody(res: request.Response, status: number, code: string): void {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.equal(res.body.error, code);
  assert.equal(typeof res.body.detail, 'string');
  assert.ok(res.body.detail.length > 0);
  assert.ok(!JSON.stringify(res.body).includes('    at '), 'no stack trace');
}

/**
 * The sample API's behaviour, run once per database kind (real Postgres, embedded PGlite):
 * the same `pg` code path must behave the same on both.
 */
export function sampleApiSuite(kind: string, open: () => Promise<SuiteDatabase>): void {
  describe(`sample API on ${kind}`, function () {
    this.timeout(60_000);
    let suiteDb: SuiteDatabase;
    let app: Express;
    let hasty: Express;

    before(async () => {
      suiteDb = await open();
      assert.equal(await migrate(suiteDb.db.write, suiteDb.db.schema), 1);
      assert.equal(await migrate(suiteDb.db.write, suiteDb.db.schema), 0, 'migrations run once');
      const health = createHealth({ checks: databaseChecks(suiteDb.db, 1000) });
      const appWith = (requestDeadlineMs: number) =>
        createApp({
          config: loadConfig({ ...TEST_DEADLINE_ENV }),
          db: suiteDb.db,
          logger: createLogger('silent'),
          health,
          version: '0.0.0-test',
          requestDeadlineMs,
        });
      app = appWith(10_000);
      // A second app over the same database with a short deadline, for the timeout case only: a
      // deadline short enough to trip on /v1/slow would also trip on a slow scrypt hash on a busy CI.
      hasty = appWith(200);
    });
    after(async () => {
      await suiteDb?.close();
    });

    async function registerAndLogin(username: string, password = 'correct horse battery'): Promise<string> {
      const reg = await request(app).post('/v1/auth/register').send({ username, password });
      assert.equal(reg.status, 201, JSON.stringify(reg.body));
      assert.equal(reg.body.username, username);
      assert.equal(reg.body.password_hash, undefined);
      const login = await request(app).post('/v1/auth/login').send({ username, password });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      assert.equal(login.body.token_type, 'Bearer');
      assert.match(login.body.token, /^rmp_[A-Za-z0-9_-]{43}$/);
      return login.body.token as string;
    }

    it('registers, logs in, and runs the notes CRUD', async () => {
      const token = await registerAndLogin('alice');
      const auth = { Authorization: `Bearer ${token}` };

      const created = await request(app).post('/v1/notes').set(auth).send({ title: 'first', body: 'hello' });
      assert.equal(created.status, 201);
      assert.equal(created.headers['location'], `/v1/notes/${created.body.id}`);
      assert.equal(created.body.title, 'first');
      const id = created.body.id as string;

      const got = await request(app).get(`/v1/notes/${id}`).set(auth);
      assert.equal(got.status, 200);
      assert.deepEqual([got.body.title, got.body.body], ['first', 'hello']);

      const updated = await request(app).put(`/v1/notes/${id}`).set(auth).send({ title: 'second', body: 'bye' });
      assert.equal(updated.status, 200);
      assert.equal(updated.body.title, 'second');

      const list = await request(app).get('/v1/notes').set(auth);
      assert.equal(list.status, 200);
      assert.deepEqual(
        list.body.notes.map((n: { id: string; title: string }) => [n.id, n.title]),
        [[id, 'second']],
      );

      const deleted = await request(app).delete(`/v1/notes/${id}`).set(auth);
      assert.equal(deleted.status, 204);
      assertErrorBody(await request(app).get(`/v1/notes/${id}`).set(auth), 404, 'NOT_FOUND');
      assertErrorBody(await request(app).delete(`/v1/notes/${id}`).set(auth), 404, 'NOT_FOUND');
    });

    it("hides another principal's notes behind 404", async () => {
      const owner = { Authorization: `Bearer ${await registerAndLogin('owner')}` };
      const other = { Authorization: `Bearer ${await registerAndLogin('intruder')}` };
      const note = await request(app).post('/v1/notes').set(owner).send({ title: 'mine', body: 'secret' });
      assert.equal(note.status, 201);
      const path = `/v1/notes/${note.body.id}`;
      assertErrorBody(await request(app).get(path).set(other), 404, 'NOT_FOUND');
      assertErrorBody(await request(app).put(path).set(other).send({ title: 'x', body: 'y' }), 404, 'NOT_FOUND');
      assertErrorBody(await request(app).delete(path).set(other), 404, 'NOT_FOUND');
      const theirs = await request(app).get('/v1/notes').set(other);
      assert.deepEqual(theirs.body.notes, []);
      const still = await request(app).get(path).set(owner);
      assert.equal(still.body.title, 'mine');
    });

    it('answers bad bodies with 400 and our JSON error', async () => {
      const auth = { Authorization: `Bearer ${await registerAndLogin('validator')}` };
      assertErrorBody(
        await request(app).post('/v1/notes').set(auth).set('Content-Type', 'application/json').send('{"title":'),
        400,
        'BAD_REQUEST',
      );
      assertErrorBody(await request(app).post('/v1/notes').set(auth).send({ title: '', body: 'x' }), 400, 'BAD_REQUEST');
      assertErrorBody(await request(app).post('/v1/notes').set(auth).send({ title: 'x' }), 400, 'BAD_REQUEST');
      assertErrorBody(await request(app).post('/v1/notes').set(auth).send({ title: 'x', body: 'y', owner: 'z' }), 400, 'BAD_REQUEST');
      assertErrorBody(await request(app).post('/v1/notes').set(auth).send([1, 2]), 400, 'BAD_REQUEST');
      assertErrorBody(
        await request(app).post('/v1/notes').set(auth).set('Content-Type', 'text/plain').send('hello'),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      );
      assertErrorBody(
        await request(app)
          .post('/v1/notes')
          .set(auth)
          .send({ title: 'x', body: 'y'.repeat(70_000) }),
        413,
        'PAYLOAD_TOO_LARGE',
      );
      assertErrorBody(await request(app).get('/v1/notes?limit=abc').set(auth), 400, 'BAD_REQUEST');
      assertErrorBody(await request(app).post('/v1/auth/register').send({ username: 'a b', password: 'long enough' }), 400, 'BAD_REQUEST');
      assertErrorBody(await request(app).post('/v1/auth/register').send({ username: 'shorty', password: 'short' }), 400, 'BAD_REQUEST');
      assertErrorBody(await request(app).post('/v1/auth/register'), 400, 'BAD_REQUEST');
    });

    it('refuses a NUL or another control character in a note with 400 naming the field, never 500', async () => {
      const auth = { Authorization: `Bearer ${await registerAndLogin('nul-writer')}` };
      const note = await request(app).post('/v1/notes').set(auth).send({ title: 'clean', body: 'x' });
      assert.equal(note.status, 201);
      const path = `/v1/notes/${note.body.id}`;
      for (const [verb, send] of [
        ['POST', () => request(app).post('/v1/notes')],
        ['PUT', () => request(app).put(path)],
      ] as const) {
        const title = await send().set(auth).send({ title: 'a\u0000b', body: 'x' });
        assertErrorBody(title, 400, 'BAD_REQUEST');
        assert.match(title.body.detail, /^body\.title: /, verb);
        const body = await send().set(auth).send({ title: 't', body: 'a\u0000b' });
        assertErrorBody(body, 400, 'BAD_REQUEST');
        assert.match(body.body.detail, /^body\.body: /, verb);
        assertErrorBody(await send().set(auth).send({ title: 'a\tb', body: 'x' }), 400, 'BAD_REQUEST');
        assertErrorBody(await send().set(auth).send({ title: 'a\u007fb', body: 'x' }), 400, 'BAD_REQUEST');
        assertErrorBody(await send().set(auth).send({ title: 't', body: 'a\u001bb' }), 400, 'BAD_REQUEST');
        assertErrorBody(await send().set(auth).send({ title: 't', body: 'a\ud800b' }), 400, 'BAD_REQUEST');
      }
      // A body keeps its tabs and line breaks.
      const multiline = await request(app).put(path).set(auth).send({ title: 'lines', body: 'a\tb\r\nc\n' });
      assert.equal(multiline.status, 200);
      assert.equal(multiline.body.body, 'a\tb\r\nc\n');
      assert.equal((await request(app).get(path).set(auth)).body.title, 'lines');
    });

    it('reads empty query values as the default', async () => {
      const auth = { Authorization: `Bearer ${await registerAndLogin('empty-query')}` };
      for (let i = 0; i < 3; i++)
        assert.equal(
          (
            await request(app)
              .post('/v1/notes')
              .set(auth)
              .send({ title: `n${i}`, body: '' })
          ).status,
          201,
        );
      for (const query of ['?limit=&offset=', '?limit=', '?offset=', '?limit=&offset=1']) {
        const res = await request(app).get(`/v1/notes${query}`).set(auth);
        assert.equal(res.status, 200, `${query}: ${res.text}`);
        assert.equal(res.body.notes.length, query.endsWith('offset=1') ? 2 : 3, query);
      }
      assertErrorBody(await request(app).get('/v1/notes?limit=0').set(auth), 400, 'BAD_REQUEST');
      assertErrorBody(await request(app).get('/v1/notes?limit=%20').set(auth), 400, 'BAD_REQUEST');
      const slow = await request(app).get('/v1/slow?ms=');
      assert.equal(slow.status, 200);
      assert.equal(slow.body.slept_ms, 1000, 'the default wait');
    });

    it('refuses a taken username, a wrong password and bad tokens', async () => {
      await registerAndLogin('bob');
      assertErrorBody(
        await request(app).post('/v1/auth/register').send({ username: 'bob', password: 'another password' }),
        409,
        'CONFLICT',
      );
      const wrong = await request(app).post('/v1/auth/login').send({ username: 'bob', password: 'not the password' });
      assertErrorBody(wrong, 401, 'UNAUTHORIZED');
      assertErrorBody(await request(app).post('/v1/auth/login').send({ username: 'nobody', password: 'whatever123' }), 401, 'UNAUTHORIZED');
      const noAuth = await request(app).get('/v1/notes');
      assertErrorBody(noAuth, 401, 'UNAUTHORIZED');
      assert.equal(noAuth.headers['www-authenticate'], 'Bearer');
      assertErrorBody(await request(app).get('/v1/notes').set('Authorization', 'Bearer nope'), 401, 'UNAUTHORIZED');
      const forged = `rmp_${'A'.repeat(43)}`;
      assertErrorBody(await request(app).get('/v1/notes').set('Authorization', `Bearer ${forged}`), 401, 'UNAUTHORIZED');
      assertErrorBody(await request(app).get('/v1/notes').set('Authorization', 'Basic Ym9iOng='), 401, 'UNAUTHORIZED');
    });

    it('stores neither passwords nor tokens in clear', async () => {
      const token = await registerAndLogin('carol', 'carol-password-1');
      const { rows: principals } = await suiteDb.db.write.query<{ password_hash: string }>(
        "SELECT password_hash FROM principals WHERE username = 'carol'",
      );
      assert.match(principals[0]?.password_hash ?? '', /^scrypt\$/);
      assert.ok(!principals[0]?.password_hash.includes('carol-password-1'));
      const { rows: sessions } = await suiteDb.db.write.query<{ token_hash: Buffer }>(
        "SELECT s.token_hash FROM sessions s JOIN principals p ON p.id = s.principal_id WHERE p.username = 'carol'",
      );
      assert.equal(sessions.length, 1);
      assert.equal(sessions[0]?.token_hash.length, 32);
      assert.ok(!sessions[0]?.token_hash.toString('latin1').includes(token));
    });

    it('serves the public routes and JSON 404s', async () => {
      const status = await request(app).get('/v1/status');
      assert.equal(status.status, 200);
      assert.equal(status.body.status, 'ok');
      assert.equal(status.body.version, '0.0.0-test');
      const slow = await request(app).get('/v1/slow?ms=50');
      assert.equal(slow.status, 200);
      assert.equal(slow.body.slept_ms, 50);
      assertErrorBody(await request(app).get('/v1/slow?ms=999999'), 400, 'BAD_REQUEST');
      const late = await request(hasty).get('/v1/slow?ms=1000');
      assertErrorBody(late, 503, 'REQUEST_TIMEOUT');
      assert.equal(late.headers['retry-after'], '1');
      assertErrorBody(await request(app).get('/v1/nothing-here'), 404, 'NOT_FOUND');
      assertErrorBody(
        await request(app)
          .get('/v1/notes/not-a-uuid')
          .set('Authorization', `Bearer ${await registerAndLogin('dave')}`),
        404,
        'NOT_FOUND',
      );
      const ready = await request(app).get('/health/ready');
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.body, { status: 'healthy', db: 'connected' });
      const live = await request(app).get('/health/live');
      assert.equal(live.status, 200);
      assert.equal(live.body.status, 'healthy');
      assert.ok(!Number.isNaN(Date.parse(live.body.timestamp)));
    });

    it('echoes a well-formed X-Request-Id and replaces a malformed one, on every answer', async () => {
      const given = await request(app).get('/v1/status').set('X-Request-Id', 'abc-123');
      assert.equal(given.headers['x-request-id'], 'abc-123');
      const replaced = await request(app).get('/v1/status').set('X-Request-Id', 'bad id with spaces');
      assert.match(String(replaced.headers['x-request-id']), /^[0-9a-f-]{36}$/);
      // Probes and refusals too (the id is given before the probes and the Host check).
      for (const path of ['/health/live', '/health/ready', '/health/started', '/v1/nothing-here']) {
        const res = await request(app).get(path).set('X-Request-Id', `probe:${path.length}`);
        assert.equal(res.headers['x-request-id'], `probe:${path.length}`, path);
      }
      const badHost = await request(app).get('/v1/status').set('Host', 'a b');
      assertErrorBody(badHost, 400, 'BAD_REQUEST');
      assert.match(String(badHost.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    });
  });
}
