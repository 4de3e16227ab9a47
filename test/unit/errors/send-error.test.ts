import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { retryAfterSeconds, sendError, type ErrorCode } from '../../../src';

describe('errors', () => {
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
});
