import type { ServerResponse } from 'node:http';
import { ERROR_STATUS, type ErrorCode } from './codes';
import { ERROR_CONTENT_TYPE, errorBody } from './error-body';

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
export function sendError(res: ServerResponse, code: ErrorCode, detail: string, options: SendErrorOptions = {}): void {
  const status = ERROR_STATUS[code];
  let wait = options.retryAfterSeconds === undefined ? undefined : retryAfterSeconds(options.retryAfterSeconds);
  if ((status === 429 || status === 503) && (wait === undefined || wait === 0)) wait = 1;
  const retryAfter = wait !== undefined && wait > 0 ? wait : undefined;
  if (retryAfter !== undefined) res.setHeader('Retry-After', String(retryAfter));
  if (options.headers !== undefined) {
    for (const [name, value] of Object.entries(options.headers)) res.setHeader(name, value);
  }
  if (options.closeConnection === true) res.setHeader('Connection', 'close');
  // Written directly rather than through res.send: an error body needs no ETag, no freshness
  // check and no content-type lookup, and a denial under a flood must cost less than the route.
  const json = JSON.stringify(errorBody(code, detail, options.extra, retryAfter));
  res.statusCode = status;
  res.setHeader('Content-Type', ERROR_CONTENT_TYPE);
  res.setHeader('Content-Length', Buffer.byteLength(json));
  res.end(json);
}
