import express, { type Express, type RequestHandler } from 'express';
import { errorHandler } from '../../src';

/** Where {@link limitedApp} mounts its limiter, and what the app does around it. */
export interface LimitedAppOptions {
  readonly method?: 'get' | 'post' | 'all';
  /** Default `/`. */
  readonly path?: string;
  /** Express's `trust proxy` (X-Forwarded-For read for the client's address). */
  readonly trustProxy?: boolean;
  /** Runs before the limiter (an authentication middleware setting `res.locals.principal`). */
  readonly before?: RequestHandler;
}

/**
 * The app a limiter test drives: `limit` (a `limiter.limit(...)` or `limiter.surfaces()`) on one
 * route answering `{ ok: true }`, then rampart's error handler, as an application mounts them.
 */
export function limitedApp(limit: RequestHandler, options: LimitedAppOptions = {}): Express {
  const app = express();
  if (options.trustProxy === true) app.set('trust proxy', true);
  if (options.before !== undefined) app.use(options.before);
  app[options.method ?? 'get'](options.path ?? '/', limit, (_req, res) => {
    res.json({ ok: true });
  });
  app.use(errorHandler());
  return app;
}
