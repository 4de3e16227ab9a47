import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import {
  checkExpectationListener,
  ERROR_STATUS,
  HttpError,
  errorHandler,
  notFoundHandler,
  retryAfterSeconds,
  sendError,
  type ErrorCode,
} from '../../src';

describe('errors', () => {
  it('maps every code to its status (append-only table)', () => {
    assert.deepEqual(ERROR_STATUS, {
      RATE_LIMITED: 429,
      RATE_LIMITER_UNAVAILABLE: 503,
      SERVER_SHUTTING_DOWN: 503,
      REQUEST_TIMEOUT: 503,
      OVERLOADED: 503,
      BAD_REQUEST: 400,
      UNAUTHORIZED: 401,
      NOT_FOUND: 404,
      METHOD_NOT_ALLOWED: 405,
      CONFLICT: 409,
      PAYLOAD_TOO_LARGE: 413,
      UNSUPPORTED_MEDIA_TYPE: 415,
      INTERNAL_ERROR: 500,
      HEADERS_TOO_LARGE: 431,
      EXPECTATION_FAILED: 417,
      DATABASE_UNAVAILABLE: 503,
    });
  });

  it('rounds Retry-After up to whole seconds, never 0 for a positive wait', () => {
    assert.equal(retryAfterSeconds(0.001), 1);
    assert.equal(retryAfterSeconds(1), 1);
    assert.equal(retryAfterSeconds(1.2), 2);
    assert.equal(retryAfterSeconds(0), 0);
    assert.equal(retryAfterSeconds(-3), 0);
    assert.equal(retryAfterSeconds(Number.NaN), 0);
  });

  describe('sendError', () => {
    function appSending(code: ErrorCode, options?: Parameters<typeof sendError>[3]) {
      const app = express();
      app.get('/', (_req, res) => sendError(res, code, 'a sentence', options));
      return app;
    }

    it('writes {"error","detail"} as application/json', async () => {
      const res = await request(appSending('NOT_FOUND')).get('/');
      assert.equal(res.status, 404);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.deepEqual(res.body, { error: 'NOT_FOUND', detail: 'a sentence' });
      assert.equal(res.headers['retry-after'], undefined);
    });

    it('puts Retry-After on every 429 and 503, in the header and the body', async () => {
      const limited = await request(appSending('RATE_LIMITED', { retryAfterSeconds: 2.1 })).get('/');
      assert.equal(limited.status, 429);
      assert.equal(limited.headers['retry-after'], '3');
      assert.equal(limited.body.retry_after, 3);
      for (const code of ['RATE_LIMITER_UNAVAILABLE', 'SERVER_SHUTTING_DOWN', 'REQUEST_TIMEOUT', 'OVERLOADED'] as const) {
        const res = await request(appSending(code)).get('/');
        assert.equal(res.status, 503);
        assert.equal(res.headers['retry-after'], '1', code);
      }
    });

    it('adds Connection: close, extra headers and extra fields without overriding ours', async () => {
      const res = await request(
        appSending('SERVER_SHUTTING_DOWN', {
          closeConnection: true,
          headers: { 'X-Extra': 'yes' },
          extra: { error: 'SPOOFED', policy: 'public' },
        }),
      ).get('/');
      assert.equal(res.headers['connection'], 'close');
      assert.equal(res.headers['x-extra'], 'yes');
      assert.equal(res.body.error, 'SERVER_SHUTTING_DOWN');
      assert.equal(res.body.policy, 'public');
    });
  });

  describe('checkExpectationListener', () => {
    const answer = (headers: Record<string, string>) => {
      const app = express();
      const listener = checkExpectationListener();
      // What Node does with the listener: hand it the request instead of the app.
      app.use((req, res) => listener(Object.assign(req, { headers: { ...req.headers, ...headers } }), res));
      return request(app).get('/');
    };

    it('answers 417 EXPECTATION_FAILED in our shape, closing the connection', async () => {
      const res = await answer({});
      assert.equal(res.status, 417);
      assert.equal(res.body.error, 'EXPECTATION_FAILED');
      assert.equal(typeof res.body.detail, 'string');
      assert.equal(res.headers['connection'], 'close');
      assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    });

    it("keeps the caller's well-formed X-Request-Id and replaces a malformed one", async () => {
      assert.equal((await answer({ 'x-request-id': 'abc.123' })).headers['x-request-id'], 'abc.123');
      assert.match(String((await answer({ 'x-request-id': 'a b' })).headers['x-request-id']), /^[0-9a-f-]{36}$/);
    });
  });

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
    app.get('/async', async () => {
      await Promise.resolve();
      throw Object.assign(new Error('forbidden thing'), { status: 403, expose: true });
    });
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

  describe('HttpError', () => {
    it('carries the status of its code as status and statusCode', () => {
      for (const code of Object.keys(ERROR_STATUS) as ErrorCode[]) {
        const err = new HttpError(code, 'a sentence');
        assert.equal(err.status, ERROR_STATUS[code], code);
        assert.equal(err.statusCode, ERROR_STATUS[code], code);
      }
    });

    it("gets its status from Express's own final handler in an app without errorHandler", async () => {
      const app = express();
      app.set('env', 'test'); // Express logs what reaches its final handler, except under test.
      app.get('/thrown', () => {
        throw new HttpError('RATE_LIMITED', 'slow down', { retryAfterSeconds: 3 });
      });
      app.get('/passed', (_req, _res, next) => next(new HttpError('CONFLICT', 'already there')));
      app.get('/async', async () => {
        await Promise.resolve();
        throw new HttpError('UNAUTHORIZED', 'who are you');
      });
      assert.equal((await request(app).get('/thrown')).status, 429);
      assert.equal((await request(app).get('/passed')).status, 409);
      assert.equal((await request(app).get('/async')).status, 401);
    });
  });
});
