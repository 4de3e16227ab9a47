// Errors: the stable codes and their statuses, the one builder of every error body, the one
// writer of every error response, and the handlers and server listeners that use them.
export { ERROR_STATUS } from './codes';
export type { ErrorCode } from './codes';
export type { ErrorBody } from './error-body';
export { retryAfterSeconds, sendError } from './send-error';
export type { SendErrorOptions } from './send-error';
export { HttpError } from './http-error';
export { errorHandler, notFoundHandler } from './handlers';
export type { ErrorHandlerOptions } from './handlers';
export { checkExpectationListener, clientErrorListener } from './client-error';
