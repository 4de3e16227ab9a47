import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { ErrorCode } from './codes';
import { HttpError } from './http-error';
import { sendError } from './send-error';
import { recordingSpan } from '../internal/recording-span';
import { DependencyUnavailableError } from '../breaker';

// Paths are client input of up to Node's header limit: a 404 names only their beginning.
const PATH_SHOWN = 128;

/**
 * Final route handler: anything no route answered gets 404 `NOT_FOUND` in our JSON shape. The
 * detail names the method and at most the first 128 characters of the path (then `…`).
 */
export function notFoundHandler(): RequestHandler {
  return (req, res) => {
    const path = req.path.length > PATH_SHOWN ? `${req.path.slice(0, PATH_SHOWN)}…` : req.path;
    sendError(res, 'NOT_FOUND', `No route for ${req.method} ${path}`);
  };
}

interface HttpLikeError {
  readonly status?: unknown;
  readonly statusCode?: unknown;
  readonly type?: unknown;
  readonly expose?: unknown;
  readonly message?: unknown;
}

/** The status of an error from elsewhere (`status`, else `statusCode`); 500 when it has none. */
function statusOf(e: HttpLikeError): number {
  if (typeof e.status === 'number') return e.status;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return 500;
}

/** The code of a client error (4xx) from elsewhere, by its status; any other 4xx is `BAD_REQUEST`. */
const CLIENT_ERROR_CODES: ReadonlyMap<number, ErrorCode> = new Map([
  [404, 'NOT_FOUND'],
  [413, 'PAYLOAD_TOO_LARGE'],
  [415, 'UNSUPPORTED_MEDIA_TYPE'],
]);

/** Options of {@link errorHandler}. */
export interface ErrorHandlerOptions {
  /** Called with every error that becomes a 500, for logging. Never sees client errors. */
  readonly onInternalError?: (err: unknown) => void;
}

// The request's span, when it is traced, gets the error as an `exception` event (its message is
// dropped and its stack kept to frames by the exporter's redaction).
function recordOnSpan(err: unknown): void {
  recordingSpan()?.recordException(err instanceof Error ? err : String(err));
}

/**
 * Final error handler: maps body-parser errors (malformed JSON, too large, bad charset) and
 * other client errors to our JSON shape, a circuit breaker's refusal
 * ({@link DependencyUnavailableError}) to 503 `DEPENDENCY_UNAVAILABLE` with `Retry-After`,
 * everything else to 500 `INTERNAL_ERROR`. Never sends
 * a stack trace or Express's HTML page.
 */
export function errorHandler(options: ErrorHandlerOptions = {}): ErrorRequestHandler {
  return (err: unknown, _req, res, next) => {
    if (res.headersSent) {
      // Already answered (e.g. 503 REQUEST_TIMEOUT) and the route wrote late: drop it.
      if (res.writableEnded) return;
      next(err);
      return;
    }
    recordOnSpan(err);
    if (err instanceof HttpError) {
      sendError(res, err.code, err.detail, err.options);
      return;
    }
    if (err instanceof DependencyUnavailableError) {
      // A breaker refused (or a call outran its timeout): the dependency is out, not the app.
      sendError(res, 'DEPENDENCY_UNAVAILABLE', `A dependency is unavailable (${err.message}); try again shortly`, {
        retryAfterSeconds: Math.max(1, Math.ceil(err.retryAfterMs / 1000)),
      });
      return;
    }
    const e = (typeof err === 'object' && err !== null ? err : {}) as HttpLikeError;
    const status = statusOf(e);
    switch (e.type) {
      case 'entity.parse.failed':
        sendError(res, 'BAD_REQUEST', 'Request body is not valid JSON');
        return;
      case 'entity.too.large':
        sendError(res, 'PAYLOAD_TOO_LARGE', 'Request body is too large');
        return;
      case 'charset.unsupported':
      case 'encoding.unsupported':
        sendError(res, 'UNSUPPORTED_MEDIA_TYPE', 'Request body encoding or charset is not supported');
        return;
      default:
        break;
    }
    if (status >= 400 && status < 500) {
      const detail = e.expose === true && typeof e.message === 'string' ? e.message : 'Bad request';
      sendError(res, CLIENT_ERROR_CODES.get(status) ?? 'BAD_REQUEST', detail);
      return;
    }
    options.onInternalError?.(err);
    sendError(res, 'INTERNAL_ERROR', 'Internal server error');
  };
}
