import express, { type RequestHandler } from 'express';
import { HttpError } from '../index';

// Where readJsonBody leaves a body error for answerBodyError.
const BODY_ERROR = 'bodyError';

/**
 * Reads a JSON body of at most `limitBytes` into `req.body` without answering a body error, so
 * that the rate limiter decides first and garbage is limited like any other request. A body
 * that is not `application/json` (415, left unread), not valid JSON (400), over the limit (413:
 * never buffered past it, the rest is read and discarded) or in an unsupported charset or
 * content encoding (415) is remembered and `req.body` stays `undefined`; {@link answerBodyError},
 * mounted after the limiter, answers it.
 */
export function readJsonBody(limitBytes: number): RequestHandler {
  const parse = express.json({ limit: limitBytes });
  return (req, res, next) => {
    // Already answered (the shutdown gate refused it while its body was arriving, or its
    // deadline passed): nothing after this may run.
    if (res.headersSent) return;
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    // A body of another type would reach the routes as `undefined`.
    if (hasBody && req.is('application/json') === false) {
      res.locals[BODY_ERROR] = new HttpError('UNSUPPORTED_MEDIA_TYPE', 'Request body must be application/json');
      next();
      return;
    }
    parse(req, res, (err?: unknown) => {
      // Answered while the body was read: an aborted read is no error, and the route must not start.
      if (res.headersSent) return;
      if (err !== undefined && err !== null) res.locals[BODY_ERROR] = err;
      next();
    });
  };
}

/** Answers the body error {@link readJsonBody} remembered (400, 413 or 415, through errorHandler). */
export function answerBodyError(): RequestHandler {
  return (_req, res, next) => {
    const err: unknown = res.locals[BODY_ERROR];
    if (err === undefined) next();
    else next(err);
  };
}
