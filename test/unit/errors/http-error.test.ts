import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { ERROR_STATUS, HttpError, type ErrorCode } from '../../../src';
import { asyncRoute } from '../../support/express-major';

describe('errors', () => {
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
      app.get(
        '/async',
        asyncRoute(async () => {
          await Promise.resolve();
          throw new HttpError('UNAUTHORIZED', 'who are you');
        }),
      );
      assert.equal((await request(app).get('/thrown')).status, 429);
      assert.equal((await request(app).get('/passed')).status, 409);
      assert.equal((await request(app).get('/async')).status, 401);
    });
  });
});
