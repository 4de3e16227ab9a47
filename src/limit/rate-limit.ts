import type { RequestHandler } from 'express';
import type { RateLimiterOptions } from './options';
import { createRateLimiter } from './rate-limiter';

/** Options of {@link rateLimit}: a limiter and the policies to apply (default: all of them). */
export interface RateLimitMiddlewareOptions extends RateLimiterOptions {
  readonly apply?: readonly string[];
}

/**
 * One middleware for `app.use` or a route: applies `apply` (default every policy in
 * `policies`) to each request. `close()` stops its breaker's timers.
 */
export function rateLimit(options: RateLimitMiddlewareOptions): RequestHandler & { close(): Promise<void> } {
  const limiter = createRateLimiter(options);
  const handler = limiter.limit(...(options.apply ?? Object.keys(options.policies)));
  return Object.assign(handler, { close: () => limiter.close() });
}
