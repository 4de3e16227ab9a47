import assert from 'node:assert/strict';
import { LazyAbort } from '../../../src/internal/lazy-abort';

// src/internal/lazy-abort.ts: the limiter's and requestDeadline's aborts, whose AbortSignal is
// made only when read.
describe('LazyAbort', () => {
  it('a signal read before the abort hears it once, with the first reason', () => {
    const abort = new LazyAbort();
    const signal = abort.signal;
    const heard: unknown[] = [];
    signal.addEventListener('abort', () => heard.push(signal.reason));
    assert.equal(abort.aborted, false);
    abort.abort('first');
    abort.abort('second');
    abort.abortLazily(() => 'third');
    assert.equal(abort.aborted, true);
    assert.deepEqual(heard, ['first']);
    assert.equal(abort.signal, signal, 'the same signal every time');
  });

  it('abortLazily: the reason is made only when the signal is read, once; on a signal already read, at once', () => {
    let made = 0;
    const unread = new LazyAbort();
    unread.abortLazily(() => new Error(`reason ${++made}`));
    assert.equal(unread.aborted, true);
    assert.equal(made, 0, 'nobody read the signal: no reason made');
    assert.ok(unread.signal.aborted);
    assert.equal((unread.signal.reason as Error).message, 'reason 1');
    assert.equal(made, 1);

    const read = new LazyAbort();
    const signal = read.signal;
    read.abortLazily(() => new Error(`reason ${++made}`));
    assert.equal(made, 2);
    assert.ok(signal.aborted);
    assert.equal((signal.reason as Error).message, 'reason 2');
  });
});
