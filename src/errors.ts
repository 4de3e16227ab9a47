import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { REQUEST_ID_HEADER, requestIdFor } from './request-id';

/**
 * Every error code rampart or the sample API can answer with. Append-only: a code, once
 * published, keeps its meaning and its HTTP status.
 */
export type ErrorCode =
  | 'RATE_LIMITED'
  | 'RATE_LIMITER_UNAVAILABLE'
  | 'SERVER_SHUTTING_DOWN'
  | 'REQUEST_TIMEOUT'
  | 'OVERLOADED'
  | 'BAD_REQUEST'
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'CONFLICT'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'INTERNAL_ERROR'
  | 'HEADERS_TOO_LARGE'
  | 'EXPECTATION_FAILED';

/** The HTTP status of each {@link ErrorCode}. */
export const ERROR_STATUS: Readonly<Record<ErrorCode, number>> = Object.freeze({
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
});

/** The JSON body of every error response. */
export interface ErrorBody {
  readonly error: ErrorCode;
  readonly detail: string;
  readonly retry_after?: number;
  readonly [extra: string]: unknown;
}

/** Options of {@link sendError}. */
export interface SendErrorOptions {
  /**
   * Seconds the client should wait before retrying. Rounded up to whole seconds and never 0
   * when the wait is positive; sent as `Retry-After` and as `retry_after` in the body. Required
   * in spirit for every 429 and 503: when omitted on one of those, 1 second is sent.
   */
  readonly retryAfterSeconds?: number;
  /** Ask the client to close the connection after this response (`Connection: close`). */
  readonly closeConnection?: boolean;
  /** Extra body fields; they never override `error`, `detail` or `retry_after`. */
  readonly extra?: Readonly<Record<string, unknown>>;
  /** Extra response headers, e.g. `WWW-Authenticate` on a 401. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Whole seconds for `Retry-After`: rounded up, at least 1 for any positive wait. */
export function retryAfterSeconds(seconds: number): number {
  if (!Number.isFinite(seconds) || seconds <= 0) return 0;
  return Math.max(1, Math.ceil(seconds));
}

/**
 * The one function that writes an error response: status from {@link ERROR_STATUS}, body
 * `{"error","detail"}` as `application/json`, `Retry-After` on every 429 and 503. Takes any
 * `ServerResponse` (an Express `Response` is one), so server-level listeners answer alike.
 */
export function sendError(
  res: ServerResponse,
  code: ErrorCode,
  detail: string,
  options: SendErrorOptions = {},
): void {
  const status = ERROR_STATUS[code];
  const body: Record<string, unknown> = { ...options.extra, error: code, detail };
  let wait = options.retryAfterSeconds === undefined ? undefined : retryAfterSeconds(options.retryAfterSeconds);
  if ((status === 429 || status === 503) && (wait === undefined || wait === 0)) wait = 1;
  if (wait !== undefined && wait > 0) {
    res.setHeader('Retry-After', String(wait));
    body['retry_after'] = wait;
  }
  if (options.headers !== undefined) {
    for (const [name, value] of Object.entries(options.headers)) res.setHeader(name, value);
  }
  if (options.closeConnection === true) res.setHeader('Connection', 'close');
  // Written directly rather than through res.send: an error body needs no ETag, no freshness
  // check and no content-type lookup, and a denial under a flood must cost less than the route.
  const json = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(json));
  res.end(json);
}

/**
 * An error that {@link errorHandler} answers with its own code and detail. Throw it (or pass
 * it to `next`) from a route to answer a client error without writing the response yourself.
 */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    readonly options: SendErrorOptions = {},
  ) {
    super(detail);
  }
}

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

/** Options of {@link errorHandler}. */
export interface ErrorHandlerOptions {
  /** Called with every error that becomes a 500, for logging. Never sees client errors. */
  readonly onInternalError?: (err: unknown) => void;
}

/**
 * Final error handler: maps body-parser errors (malformed JSON, too large, bad charset) and
 * other client errors to our JSON shape, everything else to 500 `INTERNAL_ERROR`. Never sends
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
    if (err instanceof HttpError) {
      sendError(res, err.code, err.detail, err.options);
      return;
    }
    const e = (typeof err === 'object' && err !== null ? err : {}) as HttpLikeError;
    const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : 500;
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
      const code: ErrorCode =
        status === 404 ? 'NOT_FOUND' : status === 413 ? 'PAYLOAD_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'BAD_REQUEST';
      const detail = e.expose === true && typeof e.message === 'string' ? e.message : 'Bad request';
      sendError(res, code, detail);
      return;
    }
    options.onInternalError?.(err);
    sendError(res, 'INTERNAL_ERROR', 'Internal server error');
  };
}

/** What Node's parser errors become; any other parser error is {@link MALFORMED}. */
const PARSER_ERRORS: Readonly<Record<string, readonly [ErrorCode, string]>> = Object.freeze({
  HPE_HEADER_OVERFLOW: ['HEADERS_TOO_LARGE', 'Request headers are too large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: ['PAYLOAD_TOO_LARGE', 'Request chunk extensions are too large'],
});
const MALFORMED: readonly [ErrorCode, string] = ['BAD_REQUEST', 'Malformed HTTP request'];

/**
 * A server socket as Node's HTTP server uses it: `_httpMessage` is the response being written
 * on it, if any (private to Node, but what Node's own clientError handling reads too); the
 * responses to later pipelined requests wait in Node's queue and take its place in turn.
 */
type ServerSocket = Duplex & { _httpMessage?: ServerResponse | null };

/** The raw bytes of an answer written outside any `ServerResponse`, always closing. */
function rawAnswer(status: number, headers: readonly string[], body = ''): string {
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
    `${REQUEST_ID_HEADER}: ${randomUUID()}\r\n` +
    headers.map((h) => `${h}\r\n`).join('') +
    'Connection: close\r\n\r\n' +
    body
  );
}

/**
 * A listener for the HTTP server's `clientError` event: a request Node's parser refuses gets
 * our JSON body — 431 `HEADERS_TOO_LARGE` for headers over `--max-http-header-size`, 413
 * `PAYLOAD_TOO_LARGE` for oversized chunk extensions, 400 `BAD_REQUEST` for a malformed request
 * line, header or chunked body — with a new `X-Request-Id` and `Connection: close`, and the
 * connection is closed. A client too slow to send its headers gets 408 with an empty body, as
 * from Node (plus the `X-Request-Id`).
 *
 * Requests parsed whole before the bad bytes (pipelining) are answered first, in order: the
 * answer waits for the response in flight on the connection (Node queues the later ones behind
 * it). When the bad bytes are in the body of the request being answered, that request gets the
 * error at once, or, if its response has already begun, the connection is only closed. Without
 * this listener Node answers with an empty body, or drops what was parsed before.
 * `server.on('clientError', clientErrorListener())`.
 */
export function clientErrorListener(): (err: Error & { code?: string }, socket: Duplex) => void {
  // Node reports a connection again when more bytes reach the failed parser, or on a timeout,
  // while an earlier response is still being written: one answer per connection.
  const answering = new WeakSet<Duplex>();
  return (err, socket) => {
    const s = socket as ServerSocket;
    if (answering.has(s)) {
      if (err.code === 'ECONNRESET') s.destroy();
      return;
    }
    if (err.code === 'ECONNRESET' || !s.writable) {
      s.destroy();
      return;
    }
    answering.add(s);
    // Nothing after the bad bytes can be parsed: stop reading while earlier answers finish.
    s.pause();
    const answer = (): void => {
      if (s.destroyed || !s.writable) {
        s.destroy();
        return;
      }
      const inFlight = s._httpMessage;
      if (inFlight !== null && inFlight !== undefined && !inFlight.writableFinished) {
        if (inFlight.req.complete) {
          // Parsed whole before the bad bytes: its answer (and those queued behind it) go first.
          const next = (): void => {
            inFlight.off('finish', next);
            inFlight.off('close', next);
            answer();
          };
          inFlight.once('finish', next);
          inFlight.once('close', next);
          return;
        }
        // The bad bytes are in this request's own body. Once its answer has begun, anything
        // written after it would corrupt it: close only.
        if (inFlight.headersSent) {
          s.destroy();
          return;
        }
      }
      // end() then destroy(): the server's sockets allow half-open connections, so end() alone
      // would keep the descriptor until the client closes its side.
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        s.end(rawAnswer(408, []), () => s.destroy());
        return;
      }
      const [code, detail] = PARSER_ERRORS[err.code ?? ''] ?? MALFORMED;
      const json = JSON.stringify({ error: code, detail });
      s.end(
        rawAnswer(ERROR_STATUS[code], ['Content-Type: application/json; charset=utf-8', `Content-Length: ${Buffer.byteLength(json)}`], json),
        () => s.destroy(),
      );
    };
    answer();
  };
}

/**
 * A listener for the HTTP server's `checkExpectation` event: a request whose `Expect` header
 * is anything but `100-continue` gets 417 `EXPECTATION_FAILED` in our JSON shape (Node's own
 * 417 has an empty body), with its `X-Request-Id` and `Connection: close` (a client waiting
 * for an interim answer may never send the body it announced). The request does not reach the
 * app. `100-continue` never comes here: Node sends `100 Continue` and serves the request.
 * `server.on('checkExpectation', checkExpectationListener())`.
 */
export function checkExpectationListener(): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    res.setHeader(REQUEST_ID_HEADER, requestIdFor(req.headers['x-request-id']));
    sendError(res, 'EXPECTATION_FAILED', 'The only expectation supported is "Expect: 100-continue"', {
      closeConnection: true,
    });
  };
}
