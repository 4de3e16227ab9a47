import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { HEALTH_PATHS } from '../constants';
import { sendError } from '../errors';
import { positiveNumber } from '../internal/options';

/**
 * - `SERVING`: normal.
 * - `DRAINING`: shutdown has begun; requests are still served, every response says
 *   `Connection: close` so clients retire their keep-alive sockets.
 * - `CLOSED`: new requests get 503 `SERVER_SHUTTING_DOWN` (exempt paths still pass); requests
 *   already in flight finish, except those whose body was still arriving when the gate closed:
 *   they get the same 503 at once (see {@link ShutdownGate.close}).
 */
export type GateState = 'SERVING' | 'DRAINING' | 'CLOSED';

/** Options of {@link createShutdownGate}. */
export interface ShutdownGateOptions {
  /** Paths (exact `req.path`) answered even when closed. Default: the health routes ({@link HEALTH_PATHS}). */
  readonly exemptPaths?: readonly string[];
  /** `Retry-After` of the 503, seconds. */
  readonly retryAfterSeconds?: number;
}

/** Defaults of {@link createShutdownGate}. */
export const SHUTDOWN_GATE_DEFAULTS = Object.freeze({
  exemptPaths: HEALTH_PATHS.all,
  retryAfterSeconds: 5,
});

/**
 * A middleware (mount it before anything that does work: only what answers at once, such as
 * `requestId()` or a Host check, may come first) that counts requests in flight and closes the
 * door on shutdown without resetting anyone's connection. Usable in any Express app on its own.
 */
export interface ShutdownGate extends RequestHandler {
  readonly state: GateState;
  /** Requests that have entered and not yet finished or been aborted. */
  readonly inFlight: number;
  /** SERVING → DRAINING: responses from now on, including those in flight, carry `Connection: close`. */
  drain(): void;
  /**
   * → CLOSED: new requests are refused with 503 (implies {@link drain}). Requests in flight whose
   * body has not all arrived (`req.complete` false: a slow or stalled upload, which has not
   * started its work since the routes read the body first) are answered the same 503 at once,
   * with `Connection: close`, instead of being waited for: their body is no longer delivered
   * (`req.pause()`, then `req.destroy()` once the 503 is written, so a body parser still reading
   * sees an aborted request and nothing after it runs) and their connection closes after the
   * answer. A request whose body has all arrived is served to completion. Exempt paths are
   * never refused. Returns how many requests were refused this way.
   */
  close(): number;
  /** Resolves `true` once nothing is in flight, or `false` when `timeoutMs` passes first. */
  whenIdle(timeoutMs: number): Promise<boolean>;
}

function retire(res: ServerResponse): void {
  if (res.headersSent) return;
  res.shouldKeepAlive = false;
  res.setHeader('Connection', 'close');
}

const SHUTTING_DOWN_DETAIL = 'The server is shutting down; retry on another instance';

/** The path of a request as it arrived (Express rewrites `req.url` inside mounted routers). */
function pathOf(req: Request): string {
  const url = req.originalUrl || req.url;
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** Creates a shutdown gate. Each gate has its own state: nothing is shared between instances. */
export function createShutdownGate(options: ShutdownGateOptions = {}): ShutdownGate {
  const d = SHUTDOWN_GATE_DEFAULTS;
  const exempt = new Set(options.exemptPaths ?? d.exemptPaths);
  const retryAfter = positiveNumber('shutdownGate', 'retryAfterSeconds', options.retryAfterSeconds ?? d.retryAfterSeconds);
  let state: GateState = 'SERVING';
  const open = new Set<Response>();
  let idleWaiters: (() => void)[] = [];

  function release(res: Response): void {
    if (!open.delete(res)) return;
    if (open.size === 0 && idleWaiters.length > 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  }
  function finished(this: Response): void {
    release(this);
  }

  // A pipelined request queued behind another response on its connection never sees its own
  // response close when the connection goes first (the response before it said
  // `Connection: close`, or the client hung up): one 'close' listener per such connection lets
  // it go.
  const queuedBySocket = new WeakMap<Socket, Set<Response>>();
  function watchQueued(socket: Socket, res: Response): void {
    let queued = queuedBySocket.get(socket);
    if (queued === undefined) {
      const set = new Set<Response>();
      socket.once('close', () => {
        for (const r of set) release(r);
        set.clear();
      });
      queuedBySocket.set(socket, set);
      queued = set;
    }
    const set = queued;
    set.add(res);
    res.once('close', () => set.delete(res));
  }

  function refuse(res: Response): void {
    res.shouldKeepAlive = false;
    sendError(res, 'SERVER_SHUTTING_DOWN', SHUTTING_DOWN_DETAIL, { retryAfterSeconds: retryAfter, closeConnection: true });
  }

  const handler = (req: Request, res: Response, next: NextFunction): void => {
    if (state === 'CLOSED' && !exempt.has(req.path)) {
      refuse(res);
      return;
    }
    const queued = res.socket === null;
    // Queued on a connection already gone: nothing will ever be written, nothing to wait for.
    if (queued && req.socket.closed) {
      next();
      return;
    }
    open.add(res);
    res.once('close', finished);
    if (queued) watchQueued(req.socket, res);
    if (state !== 'SERVING') retire(res);
    next();
  };

  /** Answers 503 to a request whose body is still arriving; `false` when it is served instead. */
  function refuseReceiving(res: Response): boolean {
    const req = res.req;
    if (req.complete || res.headersSent || exempt.has(pathOf(req))) return false;
    // The rest of the body is not delivered: whoever reads it (a body parser) never finishes,
    // so the route never starts. Once the 503 is written the request is aborted, which ends
    // that read with an error; the connection closes after the 503 (Connection: close).
    req.pause();
    res.once('finish', () => req.destroy());
    refuse(res);
    return true;
  }

  const drain = () => {
    if (state !== 'SERVING') return;
    state = 'DRAINING';
    // Responses already in flight must not promise their socket either: a client would reuse
    // it just as the server closes it, and see a reset.
    for (const res of open) retire(res);
  };

  const whenIdle = (timeoutMs: number): Promise<boolean> => {
    if (open.size === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const onIdle = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        idleWaiters = idleWaiters.filter((w) => w !== onIdle);
        resolve(false);
      }, timeoutMs);
      idleWaiters.push(onIdle);
    });
  };

  // Accessors, not copies: `state` and `inFlight` are read live.
  Object.defineProperties(handler, {
    state: { get: () => state, enumerable: true },
    inFlight: { get: () => open.size, enumerable: true },
    drain: { value: drain },
    close: {
      value: (): number => {
        drain();
        if (state === 'CLOSED') return 0;
        state = 'CLOSED';
        let refused = 0;
        // Over a copy: a refused response leaves the set when it closes.
        for (const res of [...open]) if (refuseReceiving(res)) refused++;
        return refused;
      },
    },
    whenIdle: { value: whenIdle },
  });
  return handler as ShutdownGate;
}
