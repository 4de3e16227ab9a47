import express, { type ErrorRequestHandler, type Express } from 'express';
import type { Logger } from 'pino';
import {
  DependencyUnavailableError,
  errorHandler,
  HEALTH_PATHS,
  HttpError,
  METRICS_PATH,
  notFoundHandler,
  postgresErrorCause,
  requestDeadline,
  requestId,
} from '../index';
import type { Config, Health, LoadShedder, Metrics, RateLimiter, ShutdownGate, SurfaceOptions } from '../index';
import { requireAuth } from './authenticate';
import { checkHostHeader } from './check-host-header';
import { isConnectionError, type Database } from './db/database';
import { answerBodyError, readJsonBody } from './json-body';
import { requestLogger } from './logger';
import { createAuthRouter } from './routes/auth';
import { createNotesRouter } from './routes/notes';
import { createPublicRouter } from './routes/public';

/** What the sample API is built from. */
export interface AppDependencies {
  readonly config: Config;
  readonly db: Database;
  readonly logger: Logger;
  readonly version: string;
  /** Absent when rate limiting is off. */
  readonly limiter?: RateLimiter;
  readonly metrics?: Metrics;
  /**
   * The shutdown gate; mounted right after the request id and the Host check, so every response
   * the app goes on to write knows when to say `Connection: close`.
   */
  readonly gate?: ShutdownGate;
  /** Load shedding, mounted after the probes and metrics (which it never sheds). */
  readonly shedder?: LoadShedder;
  /** Readiness and start-up probes; without it `/health/live` alone is served. */
  readonly health: Health;
  /** Answer 503 `REQUEST_TIMEOUT` past this; default {@link REQUEST_DEADLINE_MS}. */
  readonly requestDeadlineMs?: number;
}

/** The sample API's request deadline. */
export const REQUEST_DEADLINE_MS = 15_000;

/**
 * Which policies guard which route when the policies file names no surfaces: `public` per IP
 * on the public routes, `login_ip` + `login_credential` on login, `authenticated` per
 * principal on the notes; the probes and metrics exempt; `public` on everything else (a path
 * no route serves is still charged, so a request can never escape the table).
 */
export const DEFAULT_SURFACES: readonly SurfaceOptions[] = Object.freeze([
  { surfaceId: 'status', method: 'GET', path: '/v1/status', policies: ['public'] },
  { surfaceId: 'slow', method: 'GET', path: '/v1/slow', policies: ['public'] },
  { surfaceId: 'register', method: 'POST', path: '/v1/auth/register', policies: ['public'] },
  { surfaceId: 'login', method: 'POST', path: '/v1/auth/login', policies: ['login_ip', 'login_credential'] },
  { surfaceId: 'notes', path: '/v1/notes*', policies: ['authenticated'] },
  // Exact paths: a made-up path under /health/ is charged like any other.
  ...HEALTH_PATHS.all.map((path) => ({ surfaceId: `probe${path.replaceAll('/', '-')}`, method: 'GET', path, policies: [], exempt: true })),
  { surfaceId: 'metrics', method: 'GET', path: METRICS_PATH, policies: [], exempt: true },
  { surfaceId: 'default', path: '/*', policies: ['public'] },
]);

/**
 * The policy charged by address before a bearer token is looked up (see createApp): a flood of
 * made-up tokens is refused before it reaches the database.
 */
export const AUTH_LOOKUP_POLICY = 'auth_ip';

/** Lifetime of a login token. */
export const TOKEN_TTL_SECONDS = 24 * 60 * 60;
/** Largest JSON body accepted, bytes (64 kB). */
export const BODY_LIMIT = 64 * 1024;

/**
 * A query that could not reach the database (refused, unresolvable, timed out connecting, the
 * connection lost) or that its circuit breaker refused: 503 `DATABASE_UNAVAILABLE` naming the
 * cause and the server's address (or the breaker), with `Retry-After`, instead of a 500. The request's log line carries the error (pino-http's
 * `res.err`). Any other error goes on to the error handler.
 */
function databaseUnavailable(db: Database): ErrorRequestHandler {
  return (err: unknown, _req, res, next) => {
    if (res.headersSent || !isConnectionError(err)) {
      next(err);
      return;
    }
    res.err = err as Error;
    // A breaker's refusal or timeout: answered at once, Retry-After the rest of its open time.
    if (err instanceof DependencyUnavailableError) {
      const retryAfterSeconds = Math.max(1, Math.ceil(err.retryAfterMs / 1000));
      const after = err.cause instanceof Error ? ` after: ${postgresErrorCause(err.cause, db.write)}` : '';
      next(
        new HttpError('DATABASE_UNAVAILABLE', `The database is unavailable (${err.message}${after}); try again shortly`, {
          retryAfterSeconds,
        }),
      );
      return;
    }
    // Reads that cannot reach the replica go to the primary: what fails here failed there.
    const cause = postgresErrorCause(err, db.write);
    next(new HttpError('DATABASE_UNAVAILABLE', `The database is unavailable (${cause}); try again shortly`, { retryAfterSeconds: 1 }));
  };
}

/**
 * Builds the sample API. It uses rampart only through the package's public surface. Order:
 * request id, Host check, shutdown gate, probes and metrics, load shedder, request log,
 * deadline, authentication (notes), body read (errors remembered), rate limiter, body error,
 * routes, 404, database outages (503), error handler.
 */
export function createApp(deps: AppDependencies): Express {
  const { config, db, logger } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', typeof config.trustProxy === 'object' ? [...config.trustProxy] : config.trustProxy);

  // Before anything that answers, so that every answer carries X-Request-Id.
  app.use(requestId());
  app.use(checkHostHeader());
  if (deps.gate !== undefined) app.use(deps.gate);
  // Probes and metrics come next: never rate limited, never logged per request, no deadline.
  app.get(HEALTH_PATHS.live, deps.health.live());
  app.get(HEALTH_PATHS.ready, deps.health.ready());
  app.get(HEALTH_PATHS.started, deps.health.started());
  if (deps.metrics !== undefined) app.get(METRICS_PATH, deps.metrics.handler());
  // Shed before any per-request work (logging included): a shed request costs almost nothing.
  if (deps.shedder !== undefined) app.use(deps.shedder);
  app.use(requestLogger(logger));
  app.use(requestDeadline({ timeoutMs: deps.requestDeadlineMs ?? REQUEST_DEADLINE_MS }));
  // Notes are limited per principal, so the principal is known before the limiter runs; and
  // an unauthenticated body is never parsed. The token's lookup costs the database a query, so
  // it is paid for first, by address (mounted on the same path, so matched by the same router
  // rules): a flood of made-up tokens is refused by the limiter, never looked up.
  if (deps.limiter !== undefined) app.use('/v1/notes', deps.limiter.limit(AUTH_LOOKUP_POLICY));
  app.use('/v1/notes', requireAuth(db));
  // The body is read before the limiter (login is limited per username) but its errors are
  // answered after it: a client sending garbage is limited like any other.
  app.use(readJsonBody(BODY_LIMIT));
  if (deps.limiter !== undefined) app.use(deps.limiter.surfaces());
  app.use(answerBodyError());

  app.use(createPublicRouter({ serviceName: config.tracing.serviceName, version: deps.version }));
  app.use(createAuthRouter({ db, tokenTtlSeconds: TOKEN_TTL_SECONDS }));
  app.use(createNotesRouter(db));

  app.use(notFoundHandler());
  app.use(databaseUnavailable(db));
  app.use(errorHandler({ onInternalError: (err) => logger.error({ err }, 'unhandled error') }));
  return app;
}
