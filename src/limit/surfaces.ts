import { METHODS } from 'node:http';
import type { Request, RequestHandler } from 'express';
import { invalid, refuse, type SurfaceOptions } from './options';

/** A surface id: it becomes part of a Redis key when the surface overrides a bucket (no braces, no spaces). */
export const SURFACE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/** The path of a surface that takes every request no other surface takes. */
export const CATCH_ALL_PATH = '/*';

/** A surface as the table holds it: method upper-cased, prefix or exact path. */
interface Entry {
  readonly surface: SurfaceOptions;
  readonly method: string;
  /** The path without its `*` when a prefix. */
  readonly path: string;
  readonly prefix: boolean;
}

/**
 * A path as a router with these settings compares it: one trailing slash ignored unless
 * `strict`, letter case ignored unless `sensitive` (Express's defaults: neither).
 */
export function routerPath(path: string, sensitive: boolean, strict: boolean): string {
  let p = path;
  if (!strict && p.length > 1 && p.charCodeAt(p.length - 1) === 47) p = p.slice(0, -1);
  return sensitive ? p : p.toLowerCase();
}

/**
 * The methods a request's method is served by, most specific first (`HEAD` by `GET` routes, as
 * Express does); made once for every method Node's parser accepts, so a request allocates none.
 */
const LOOKUP: ReadonlyMap<string, readonly string[]> = new Map(METHODS.map((m) => [m, m === 'HEAD' ? ['HEAD', 'GET', '*'] : [m, '*']]));

/** Each surface checked on its own (a mistake throws), in table order. */
function entries(surfaces: readonly SurfaceOptions[]): Entry[] {
  const ids = new Set<string>();
  return surfaces.map((s) => {
    // The names of 0.x before the policies file took one letter case: say so rather than "undefined".
    if ('surface_id' in s)
      invalid('surfaces', 'surface_id, rate_limit_rps and rate_limit_burst are now surfaceId, rateLimitRps and rateLimitBurst');
    if (typeof s.surfaceId !== 'string' || !SURFACE_ID.test(s.surfaceId)) refuse('surfaceId', '1 to 64 of [A-Za-z0-9_.-]', s.surfaceId);
    if (ids.has(s.surfaceId)) invalid('surfaces', `surfaceId "${s.surfaceId}" is used twice`);
    ids.add(s.surfaceId);
    if (typeof s.path !== 'string' || !s.path.startsWith('/')) refuse(`surface "${s.surfaceId}": path`, 'a path starting with "/"', s.path);
    if (s.path.indexOf('*') !== -1 && s.path.indexOf('*') !== s.path.length - 1)
      refuse(`surface "${s.surfaceId}": path`, 'an exact path, or a prefix with one "*" at its end', s.path);
    if (s.method !== undefined && (typeof s.method !== 'string' || !/^([A-Za-z]+|\*)$/.test(s.method)))
      refuse(`surface "${s.surfaceId}": method`, 'an HTTP method or "*"', s.method);
    const exempt = s.exempt === true;
    if (s.exempt !== undefined && typeof s.exempt !== 'boolean') refuse(`surface "${s.surfaceId}": exempt`, 'true or false', s.exempt);
    if (!Array.isArray(s.policies)) refuse(`surface "${s.surfaceId}": policies`, 'a list of policy names', s.policies);
    if (exempt && s.policies.length > 0)
      invalid('surfaces', `surface "${s.surfaceId}" is exempt and names policies: an exempt surface charges nothing (policies: [])`);
    if (!exempt && s.policies.length === 0)
      invalid(
        'surfaces',
        `surface "${s.surfaceId}" names no policies: list at least one, or set exempt: true to let its requests through unlimited`,
      );
    const prefix = s.path.endsWith('*');
    return { surface: s, method: (s.method ?? '*').toUpperCase(), path: prefix ? s.path.slice(0, -1) : s.path, prefix };
  });
}

/**
 * The table's problems, in the words `rampart check-policies` and the limiter both use: two
 * surfaces that take the same requests (compared as the most lenient router does: case and
 * one trailing slash ignored), a prefix that an earlier prefix hides, and a table without a
 * surface for what no other surface takes (`path: "/*"`, last): without one, a request the table
 * does not name would not be limited at all.
 */
export function surfaceTableProblems(surfaces: readonly Pick<SurfaceOptions, 'surfaceId' | 'method' | 'path'>[]): string[] {
  const problems: string[] = [];
  const exact = new Map<string, string>();
  const prefixes: { id: string; method: string; path: string }[] = [];
  let catchAll = false;
  for (const s of surfaces) {
    const method = (s.method ?? '*').toUpperCase();
    if (s.path.endsWith('*')) {
      const path = routerPath(s.path.slice(0, -1), false, true);
      const earlier = prefixes.find((p) => path.startsWith(p.path) && (p.method === '*' || p.method === method));
      if (earlier !== undefined)
        problems.push(
          `surface "${s.surfaceId}" is never reached: surface "${earlier.id}" (${earlier.method} ${earlier.path}*) comes first and takes every request it would; put the narrower prefix first`,
        );
      prefixes.push({ id: s.surfaceId, method, path });
      if (path === '/' && method === '*') catchAll = true;
    } else {
      const key = `${method} ${routerPath(s.path, false, false)}`;
      const other = exact.get(key);
      if (other !== undefined)
        problems.push(
          `surfaces "${other}" and "${s.surfaceId}" take the same requests (${key}: a router ignores letter case and one trailing slash); merge them`,
        );
      else exact.set(key, s.surfaceId);
    }
  }
  if (!catchAll)
    problems.push(
      'no surface takes the requests the others do not, so they would not be limited: end the list with { "surfaceId": "default", "path": "/*", "policies": [...] } (or "exempt": true to let them through unlimited on purpose)',
    );
  return problems;
}

/** A compiled table for one pair of router settings. */
interface Table {
  readonly exact: Map<string, RequestHandler>;
  readonly prefixes: readonly { method: string; prefix: string; handler: RequestHandler }[];
}

const pass: RequestHandler = (_req, _res, next) => next();

/**
 * Checks the surfaces (a mistake, an overlap or a missing catch-all throws here) and returns a
 * middleware that hands each request to the handler of the surface the router would agree on:
 * the request's path compared as the app's router compares it (`case sensitive routing` and
 * `strict routing`, both off by default: letter case and one trailing slash ignored), an exact
 * path first, then prefixes in order, then the catch-all. `HEAD` is taken by `HEAD`, then
 * `GET` surfaces, as Express serves it. An exempt surface lets its requests through.
 */
export function surfaceRouter(
  surfaces: readonly SurfaceOptions[],
  handlerFor: (surface: SurfaceOptions) => RequestHandler,
): RequestHandler {
  const list = entries(surfaces);
  const handlers = list.map((e) => (e.surface.exempt === true ? pass : handlerFor(e.surface)));
  const problems = surfaceTableProblems(surfaces);
  if (problems.length > 0) invalid('surfaces', problems.join('; '));
  const catchAll = handlers[list.findIndex((e) => e.prefix && e.path === '/' && e.method === '*')] as RequestHandler;
  // One table per pair of router settings, made once: a request pays one lookup.
  const tables: Table[] = [];
  for (const sensitive of [false, true])
    for (const strict of [false, true]) {
      const exact = new Map<string, RequestHandler>();
      const prefixes: { method: string; prefix: string; handler: RequestHandler }[] = [];
      list.forEach((e, i) => {
        const handler = handlers[i] as RequestHandler;
        if (e.prefix) prefixes.push({ method: e.method, prefix: sensitive ? e.path : e.path.toLowerCase(), handler });
        else {
          const key = `${e.method} ${routerPath(e.path, sensitive, strict)}`;
          if (!exact.has(key)) exact.set(key, handler);
        }
      });
      tables.push({ exact, prefixes });
    }

  return (req, res, next) => {
    const settings = (req as Request & { app?: { settings?: Record<string, unknown> } }).app?.settings;
    const sensitive = settings?.['case sensitive routing'] === true;
    const strict = settings?.['strict routing'] === true;
    const table = tables[(sensitive ? 2 : 0) + (strict ? 1 : 0)] as Table;
    const path = routerPath(req.path, sensitive, strict);
    const methods = LOOKUP.get(req.method) ?? [req.method, '*'];
    for (const m of methods) {
      const handler = table.exact.get(`${m} ${path}`);
      if (handler !== undefined) {
        handler(req, res, next);
        return;
      }
    }
    for (const p of table.prefixes) {
      if ((p.method === '*' || methods.includes(p.method)) && path.startsWith(p.prefix)) {
        p.handler(req, res, next);
        return;
      }
    }
    // A target that is no path (`OPTIONS *`): the catch-all's.
    catchAll(req, res, next);
  };
}
