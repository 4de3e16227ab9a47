import type { ErrorCode } from './codes';

/** The JSON body of every error response. */
export interface ErrorBody {
  readonly error: ErrorCode;
  readonly detail: string;
  readonly retry_after?: number;
  readonly [extra: string]: unknown;
}

/** The `Content-Type` of every error body. */
export const ERROR_CONTENT_TYPE = 'application/json; charset=utf-8';

/**
 * The one builder of an error body, whether it goes out through a `ServerResponse` or straight
 * onto a socket: the `extra` fields first, then `error` and `detail`, then `retry_after` when a
 * wait is given. `extra` never overrides `error`, `detail` or a given `retry_after`.
 */
export function errorBody(code: ErrorCode, detail: string, extra?: Readonly<Record<string, unknown>>, retryAfter?: number): ErrorBody {
  const body: Record<string, unknown> = { ...extra, error: code, detail };
  if (retryAfter !== undefined) body['retry_after'] = retryAfter;
  return body as ErrorBody;
}
