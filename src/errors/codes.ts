/**
 * The HTTP status of every error code rampart or the sample API can answer with. Append-only:
 * a code, once published, keeps its meaning and its HTTP status.
 */
export const ERROR_STATUS = Object.freeze({
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
  DATABASE_UNAVAILABLE: 503,
  DEPENDENCY_UNAVAILABLE: 503,
} as const satisfies Record<string, number>);

/** Every error code rampart or the sample API can answer with: the keys of {@link ERROR_STATUS}. */
export type ErrorCode = keyof typeof ERROR_STATUS;
