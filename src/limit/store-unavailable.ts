/**
 * A store's failure to reach its backend, whose message names the cause and where (`connect
 * ECONNREFUSED 127.0.0.1:6379`) and nothing secret: the limiter's 503 `RATE_LIMITER_UNAVAILABLE`
 * repeats it in its detail, and the limiter's `onBackendError` receives it. The error the client
 * raised is its `cause`. Other failures of a store are logged but never described to the client.
 */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}
