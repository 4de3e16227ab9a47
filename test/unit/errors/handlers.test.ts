import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { HttpError, errorHandler, notFoundHandler } from '../../../src';
import { asyncRoute } from '../../support/express-major';

describe('errors', () => {
  describe('notFoundHandler and errorHandler', () => {
    const internal: unknown[] = [];
    const app = express();
    app.use(express.json({ limit: '1kb' }));
    app.post('/echo', (req, res) => {
      res.json(req.body);
    });
    app.get('/boom', () => {
      throw new Error('database password is hunter2');
    });
    app.get('/teapot', () => {
      throw new HttpError('CONFLICT', 'already there');
    });
    app.get(
      '/async',
      asyncRoute(async () => {
        await Promise.resolve();
        throw Object.assign(new Error('forbidden thing'), { status: 403, expose: true });
      }),
    );
    app.use(notFoundHandler());
    app.use(errorHandler({ onInternalError: (e) => internal.push(e) }));

    it('answers unknown routes with 404 NOT_FOUND', async () => {
      const res = await request(app).get('/missing');
      assert.deepEqual(res.body, { error: 'NOT_FOUND', detail: 'No route for GET /missing' });
    });

    it('names at most the first 128 characters of the path in a 404', async () => {
      const long = await request(app).get(`/${'p'.repeat(16_000)}`);
      assert.equal(long.status, 404);
      assert.deepEqual(long.body, { error: 'NOT_FOUND', detail: `No route for GET /${'p'.repeat(127)}…` });
      const exact = `/${'q'.repeat(127)}`;
      assert.equal((await request(app).get(exact)).body.detail, `No route for GET ${exact}`);
      assert.equal((await request(app).get(`${exact}r`)).body.detail, `No route for GET ${exact}…`);
    });

    it('answers malformed and oversized JSON in our shape', async () => {
      const bad = await request(app).post('/echo').set('Content-Type', 'application/json').send('{"a":');
      assert.deepEqual(bad.body, { error: 'BAD_REQUEST', detail: 'Request body is not valid JSON' });
      const big = await request(app)
        .post('/echo')
        .send({ a: 'x'.repeat(2000) });
      assert.equal(big.status, 413);
      assert.equal(big.body.error, 'PAYLOAD_TOO_LARGE');
    });

    it('hides internal errors behind 500 INTERNAL_ERROR with no stack', async () => {
      const res = await request(app).get('/boom');
      assert.equal(res.status, 500);
      assert.deepEqual(res.body, { error: 'INTERNAL_ERROR', detail: 'Internal server error' });
      assert.ok(!res.text.includes('hunter2'));
      assert.equal(internal.length, 1);
    });

    it('answers HttpError and exposed client errors with their code', async () => {
      const teapot = await request(app).get('/teapot');
      assert.deepEqual([teapot.status, teapot.body.error, teapot.body.detail], [409, 'CONFLICT', 'already there']);
      const forbidden = await request(app).get('/async');
      assert.deepEqual([forbidden.status, forbidden.body.error], [400, 'BAD_REQUEST']);
      assert.equal(internal.length, 1, 'client errors are not reported as internal');
    });
  });
});
