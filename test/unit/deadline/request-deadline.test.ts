import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { deadlineSignal, requestDeadline } from '../../../src';

// src/deadline/request-deadline.ts
describe('request deadline', () => {
  function app(timeoutMs: number) {
    const a = express();
    a.use(requestDeadline({ timeoutMs, exemptPaths: ['/exempt'] }));
    const stopped: boolean[] = [];
    const slow = (req: express.Request, res: express.Response) => {
      const signal = deadlineSignal(res);
      const timer = setTimeout(() => res.json({ late: true }), 300);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        stopped.push(true);
      });
      void req;
    };
    a.get('/slow', slow);
    a.get('/exempt', (_req, res) => setTimeout(() => res.json({ ok: true }), 100));
    a.get('/late-writer', (_req, res) => setTimeout(() => res.json({ late: true }), 150));
    return { a, stopped };
  }

  it('answers 503 REQUEST_TIMEOUT past the deadline and aborts the work', async () => {
    const { a, stopped } = app(50);
    const res = await request(a).get('/slow');
    assert.equal(res.status, 503);
    assert.equal(res.body.error, 'REQUEST_TIMEOUT');
    assert.equal(res.headers['retry-after'], '1');
    assert.equal(res.headers['connection'], 'close');
    assert.deepEqual(stopped, [true]);
  });

  it("the deadline's signal aborts when the response ends (reason 'request finished'), read during the request or only after it", async () => {
    const a = express();
    a.use(requestDeadline({ timeoutMs: 5_000 }));
    const heard: string[] = [];
    const kept: express.Response[] = [];
    a.get('/read', (_req, res) => {
      const signal = deadlineSignal(res);
      signal.addEventListener('abort', () => heard.push((signal.reason as Error).message));
      res.json({ aborted: signal.aborted });
    });
    a.get('/unread', (_req, res) => {
      kept.push(res);
      res.json({ ok: true });
    });
    assert.deepEqual((await request(a).get('/read')).body, { aborted: false });
    await request(a).get('/unread');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(heard, ['request finished']);
    const after = deadlineSignal(kept[0] as express.Response);
    assert.ok(after.aborted, 'read after the response ended: already aborted');
    assert.equal((after.reason as Error).message, 'request finished');
  });

  it('deadlineSignal is an AbortSignal that never aborts where no deadline is mounted, one per response', async () => {
    const seen: { signal: AbortSignal; same: boolean }[] = [];
    const record = (_req: express.Request, res: express.Response) => {
      const signal: AbortSignal = deadlineSignal(res);
      seen.push({ signal, same: deadlineSignal(res) === signal });
      res.json({ aborted: signal.aborted });
    };
    const plain = express();
    plain.get('/x', record);
    const withDeadline = express();
    withDeadline.use(requestDeadline({ timeoutMs: 50, exemptPaths: ['/x'] }));
    withDeadline.get('/x', record);
    for (const a of [plain, plain, withDeadline]) assert.deepEqual((await request(a).get('/x')).body, { aborted: false });
    assert.equal(seen.length, 3);
    for (const { signal, same } of seen) {
      assert.ok(signal instanceof AbortSignal);
      assert.ok(same, 'the same signal on every call for one response');
    }
    assert.notEqual(seen[0]?.signal, seen[1]?.signal, 'not shared between responses (listeners would pile up)');
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(
      seen.every(({ signal }) => !signal.aborted),
      'never aborts, even after the response and past the deadline',
    );
  });

  it('drops a late response without crashing, and leaves exempt paths alone', async () => {
    const { a } = app(50);
    assert.equal((await request(a).get('/late-writer')).status, 503);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await request(a).get('/exempt')).status, 200);
    assert.throws(() => requestDeadline({ timeoutMs: 0 }), /timeoutMs must be a positive integer/);
  });
});
