import type { RequestHandler, Response } from 'express';
import { sendError } from '../errors';
import { LazyAbort } from '../internal/lazy-abort';
import { positiveInteger } from '../internal/options';

/** Options of {@link requestDeadline}. */
export interface RequestDeadlineOptions {
  /** Time a request may take, from when this middleware sees it. */
  readonly timeoutMs: number;
  /** Paths (exact `req.path`) without a deadline. */
  readonly exemptPaths?: readonly string[];
}

/**
 * The `AbortSignal` of a request's deadline (set by {@link requestDeadline}): pass it to
 * timers, fetches and queries so the work stops when the request has been answered. Where no
 * deadline is mounted (an exempt path, or no `requestDeadline` at all) it is a signal that never
 * aborts, the same one on every call for that response, so routes need no `undefined` check.
 */
export function deadlineSignal(res: Response): AbortSignal {
  let deadline = deadlines.get(res);
  if (deadline === undefined) {
    // One per response, not one for the process: listeners added to a shared signal would pile
    // up on it for as long as the process lives.
    deadline = new LazyAbort();
    deadlines.set(res, deadline);
  }
  return deadline.signal;
}

/** Each response's deadline; its signal is made only when a route asks for it (most never do). */
const deadlines = new WeakMap<Response, LazyAbort>();

// The route may still try to answer (from a timer, a query callback): turn its writes into
// no-ops on this one response, so a late write can neither throw nor crash the process.
function silence(res: Response): void {
  const noop = function (this: Response) {
    return this;
  };
  for (const method of ['setHeader', 'appendHeader', 'removeHeader', 'writeHead', 'write', 'end', 'flushHeaders'] as const) {
    Object.defineProperty(res, method, { value: noop, configurable: true, writable: true });
  }
}

/**
 * Answers 503 `REQUEST_TIMEOUT` (with `Connection: close`) when a request runs past its
 * deadline, and aborts the request's {@link deadlineSignal} so its work can stop. A response
 * the route writes after that is dropped.
 */
export function requestDeadline(options: RequestDeadlineOptions): RequestHandler {
  const timeoutMs = positiveInteger('requestDeadline', 'timeoutMs', options.timeoutMs);
  const exempt = new Set(options.exemptPaths ?? []);
  return (req, res, next) => {
    if (exempt.has(req.path)) {
      next();
      return;
    }
    const deadline = new LazyAbort();
    deadlines.set(res, deadline);
    const timer = setTimeout(() => {
      deadline.abort(new Error(`request deadline of ${timeoutMs} ms passed`));
      if (res.headersSent) {
        // Mid-stream: the only honest signal left is to end the connection.
        res.destroy();
        return;
      }
      res.shouldKeepAlive = false;
      sendError(res, 'REQUEST_TIMEOUT', `The request took longer than ${timeoutMs} ms`, {
        retryAfterSeconds: 1,
        closeConnection: true,
      });
      silence(res);
    }, timeoutMs);
    res.once('close', () => {
      clearTimeout(timer);
      // The client went away or the response is done: either way the work can stop.
      deadline.abortLazily(() => new Error('request finished'));
    });
    next();
  };
}
