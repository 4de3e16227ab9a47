import assert from 'node:assert/strict';
import { ERROR_STATUS } from '../../../src';

describe('errors', () => {
  it('maps every code to its status (append-only table)', () => {
    assert.deepEqual(ERROR_STATUS, {
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
    });
  });
});
