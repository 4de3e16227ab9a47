import { ERROR_STATUS, type ErrorCode } from './codes';
import type { SendErrorOptions } from './send-error';

/**
 * An error that `errorHandler` answers with its own code and detail. Throw it (or pass
 * it to `next`) from a route to answer a client error without writing the response yourself.
 * It carries its HTTP status as `status` and `statusCode`, so that an app without
 * `errorHandler` still answers with that status (from Express's own final handler,
 * in Express's shape) rather than 500.
 */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  /** The HTTP status of {@link code}, from {@link ERROR_STATUS}. */
  readonly status: number;
  /** The same as {@link status}, under the other name Express and Node libraries read. */
  readonly statusCode: number;
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    readonly options: SendErrorOptions = {},
  ) {
    super(detail);
    this.status = ERROR_STATUS[code];
    this.statusCode = this.status;
  }
}
