import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { checkExpectationListener } from '../../../src';

describe('errors', () => {
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
});
