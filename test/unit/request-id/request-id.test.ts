import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { REQUEST_ID_HEADER, REQUEST_ID_PATTERN, requestId, requestIdFor, requestIdOf } from '../../../src';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request ids', () => {
  it('keeps a caller id of 1 to 128 of [A-Za-z0-9._:-]', () => {
    assert.equal(REQUEST_ID_HEADER, 'X-Request-Id');
    for (const id of ['a', 'abc-123', 'trace:span.1_x', 'x'.repeat(128)]) assert.equal(requestIdFor(id), id);
  });

  it('replaces anything else with a new UUID', () => {
    for (const id of [undefined, '', 'a b', 'a\tb', 'x'.repeat(129), 'é', 'a,b', '{x}', ['a', 'b']]) {
      const got = requestIdFor(id);
      assert.match(got, UUID, JSON.stringify(id));
      assert.match(got, REQUEST_ID_PATTERN);
    }
    assert.notEqual(requestIdFor(undefined), requestIdFor(undefined));
  });

  it('requestId() sets the header before anything answers, and requestIdOf reads it back', async () => {
    const app = express();
    app.use(requestId());
    app.get('/', (_req, res) => {
      res.json({ seen: requestIdOf(res) });
    });
    const given = await request(app).get('/').set('X-Request-Id', 'caller-1');
    assert.deepEqual([given.headers['x-request-id'], given.body.seen], ['caller-1', 'caller-1']);
    const fresh = await request(app).get('/');
    assert.match(String(fresh.headers['x-request-id']), UUID);
    assert.equal(fresh.body.seen, fresh.headers['x-request-id']);
    const missing = await request(app).get('/nowhere');
    assert.match(String(missing.headers['x-request-id']), UUID, "even Express's own 404");
  });
});
