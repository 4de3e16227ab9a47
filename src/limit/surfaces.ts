import type { RequestHandler } from 'express';
import { invalid, refuse, type SurfaceOptions } from './options';

/** A surface id: it becomes part of a Redis key when the surface overrides a bucket (no braces, no spaces). */
export const SURFACE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Checks the surfaces (a mistake throws here) and returns a middleware that hands each request
 * to the handler of the first surface matching it: an exact path first, then prefixes in order.
 * `HEAD` matches `GET` surfaces.
 */
export function surfaceRouter(
  surfaces: readonly SurfaceOptions[],
  handlerFor: (surface: SurfaceOptions) => RequestHandler,
): RequestHandler {
  const exact = new Map<string, RequestHandler>();
  const prefixes: { method: string; prefix: string; handler: RequestHandler }[] = [];
  const ids = new Set<string>();
  for (const s of surfaces) {
    // The names of 0.x before the policies file took one letter case: say so rather than "undefined".
    if ('surface_id' in s)
      invalid('surfaces', 'surface_id, rate_limit_rps and rate_limit_burst are now surfaceId, rateLimitRps and rateLimitBurst');
    if (typeof s.surfaceId !== 'string' || !SURFACE_ID.test(s.surfaceId)) refuse('surfaceId', '1 to 64 of [A-Za-z0-9_.-]', s.surfaceId);
    if (ids.has(s.surfaceId)) invalid('surfaces', `surfaceId "${s.surfaceId}" is used twice`);
    ids.add(s.surfaceId);
    const method = (s.method ?? '*').toUpperCase();
    if (typeof s.path !== 'string' || !s.path.startsWith('/')) refuse(`surface "${s.surfaceId}": path`, 'a path starting with "/"', s.path);
    const handler = handlerFor(s);
    if (s.path.endsWith('*')) prefixes.push({ method, prefix: s.path.slice(0, -1), handler });
    else if (!exact.has(`${method} ${s.path}`)) exact.set(`${method} ${s.path}`, handler);
  }
  return (req, res, next) => {
    const path = req.path;
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const handler = exact.get(`${method} ${path}`) ?? exact.get(`* ${path}`);
    if (handler !== undefined) {
      handler(req, res, next);
      return;
    }
    for (const p of prefixes) {
      if ((p.method === '*' || p.method === method) && path.startsWith(p.prefix)) {
        p.handler(req, res, next);
        return;
      }
    }
    next();
  };
}
