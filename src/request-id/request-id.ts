import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';

/** The response header that carries the request id. */
export const REQUEST_ID_HEADER = 'X-Request-Id';

/**
 * What a caller's `X-Request-Id` must look like to be kept. Anything else (too long, spaces,
 * control characters, two values joined by Node) is replaced: the id lands in log lines and
 * response headers, so it must be short and inert.
 */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's id when it matches {@link REQUEST_ID_PATTERN}, else a new UUID. */
export function requestIdFor(given: string | readonly string[] | undefined): string {
  return typeof given === 'string' && REQUEST_ID_PATTERN.test(given) ? given : randomUUID();
}

/** The id {@link requestId} gave this response, if it ran. */
export function requestIdOf(res: ServerResponse): string | undefined {
  const id = res.getHeader(REQUEST_ID_HEADER);
  return typeof id === 'string' ? id : undefined;
}

/**
 * Gives every response an `X-Request-Id` (see {@link requestIdFor}). Mount it first, before
 * the shutdown gate and the probes, so that every answer the app writes carries one; loggers
 * read it back with {@link requestIdOf}.
 */
export function requestId(): RequestHandler {
  return (req, res, next) => {
    res.setHeader(REQUEST_ID_HEADER, requestIdFor(req.headers['x-request-id']));
    next();
  };
}
