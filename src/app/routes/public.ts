import { Router } from 'express';
import { z } from 'zod';
import { deadlineSignal } from '../../index';
import { queryInteger, validate } from '../validate';

/** The longest `/v1/slow` will wait, so a request cannot pin a connection for long. */
export const SLOW_MAX_MS = 30_000;

const SlowQuery = z.object({
  ms: queryInteger(0, SLOW_MAX_MS, 'an integer number of milliseconds'),
});

/** Options of {@link createPublicRouter}. */
export interface PublicRouterOptions {
  readonly serviceName: string;
  readonly version: string;
}

/** `GET /v1/status` and `GET /v1/slow?ms=N`: public, no authentication. */
export function createPublicRouter(options: PublicRouterOptions): Router {
  const router = Router();
  const startedAt = Date.now();

  router.get('/v1/status', (_req, res) => {
    res.json({
      status: 'ok',
      service: options.serviceName,
      version: options.version,
      uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
    });
  });

  router.get('/v1/slow', async (req, res) => {
    const ms = validate(SlowQuery, req.query, 'query').ms ?? 1000;
    const signal = deadlineSignal(res);
    const completed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(true), ms);
      // Past the deadline (or client gone): stop waiting, the answer has been given.
      signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve(false);
        },
        { once: true },
      );
    });
    if (completed) res.json({ slept_ms: ms });
  });

  return router;
}
