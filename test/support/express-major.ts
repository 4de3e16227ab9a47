// Runs the tests' own Express apps on another Express major: with TEST_EXPRESS=4 (mocha
// `--require test/support/express-major.ts`), `require('express')` from a test or a test's
// support file resolves to Express 4 (the devDependency `express4`, npm:express@4). The sample
// API (src/app/) stays on Express 5, as it ships; the library itself never loads Express (it
// uses its types only), so what runs on Express 4 is exactly what an Express 4 application
// mounts: the limiter, the shutdown gate, health, the deadline, request ids, the error handlers.
import Module from 'node:module';
import { sep } from 'node:path';

const major = process.env['TEST_EXPRESS'];
if (major !== undefined && major !== '' && major !== '5') {
  if (major !== '4') throw new Error(`TEST_EXPRESS=${major}: 4 or 5`);
  const SAMPLE_API = `${sep}src${sep}app${sep}`;
  const resolver = Module as unknown as {
    _resolveFilename(request: string, parent: { filename?: string } | undefined, ...rest: unknown[]): string;
  };
  const resolve = resolver._resolveFilename.bind(Module);
  resolver._resolveFilename = (request, parent, ...rest) => {
    const from = parent?.filename ?? '';
    const ours = !from.includes(`${sep}node_modules${sep}`) && !from.includes(SAMPLE_API);
    if (ours && (request === 'express' || request.startsWith('express/'))) return resolve(`express4${request.slice(7)}`, parent, ...rest);
    return resolve(request, parent, ...rest);
  };
}

/** The Express major the tests' apps run on. */
export const EXPRESS_MAJOR: 4 | 5 = major === '4' ? 4 : 5;

type Handler = (req: never, res: never, next: (err?: unknown) => void) => unknown;

/**
 * An async route handler as an application of the major writes it: Express 5 passes a rejected
 * promise to the error handlers itself; Express 4 does not (the request would hang), so an
 * Express 4 app hands the rejection to `next`.
 */
export function asyncRoute<H extends Handler>(handler: H): H {
  if (EXPRESS_MAJOR === 5) return handler;
  return ((req, res, next) => {
    Promise.resolve(handler(req, res, next)).catch(next);
  }) as H;
}

/** An app's router stack (Express 5: `app.router`; Express 4: `app._router`, `app.router` throws). */
export function routerStackOf(app: object): unknown[] {
  const a = app as { _router?: { stack: unknown[] }; router?: { stack: unknown[] } };
  return (EXPRESS_MAJOR === 4 ? a._router?.stack : a.router?.stack) ?? [];
}
