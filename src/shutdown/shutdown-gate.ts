import type { ServerResponse } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { HEALTH_PATHS } from '../constants';
import { sendError } from '../errors';
import { positiveNumber } from '../internal/options';

/**
 * - `SERVING`: normal.
 * - `DRAINING`: shutdown has begun; requests are still served, every response says
 *   `Connection: close` so clients retire their keep-alive sockets.
 * - `CLOSED`: new requests get 503 `SERVER_SHUTTING_DOWN` (exempt paths still pass); requests
 *   already in flight finish.
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
  /** → CLOSED: new requests are refused with 503 (implies {@link drain}). */
  close(): void;
  /** Resolves `true` once nothing is in flight, or `false` when `timeoutMs` passes first. */
  whenIdle(timeoutMs: number): Promise<boolean>;
}

function retire(res: ServerResponse): void {
  if (res.headersSent) return;
  res.shouldKeepAlive = false;
  res.setHeader('Connection', 'close');
}

/** Creates a shutdown gate. Each gate has its own state: nothing is shared between instances. */
export function createShutdownGate(options: ShutdownGateOptions = {}): ShutdownGate {
  const d = SHUTDOWN_GATE_DEFAULTS;
  const exempt = new Set(options.exemptPaths ?? d.exemptPaths);
  const retryAfter = positiveNumber('shutdownGate', 'retryAfterSeconds', options.retryAfterSeconds ?? d.retryAfterSeconds);
  let state: GateState = 'SERVING';
  const open = new Set<ServerResponse>();
  let idleWaiters: (() => void)[] = [];

  function finished(this: ServerResponse): void {
    open.delete(this);
    if (open.size === 0 && idleWaiters.length > 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  const handler = (req: Request, res: Response, next: NextFunction): void => {
    if (state === 'CLOSED' && !exempt.has(req.path)) {
      res.shouldKeepAlive = false;
      sendError(res, 'SERVER_SHUTTING_DOWN', 'The server is shutting down; retry on another instance', {
        retryAfterSeconds: retryAfter,
        closeConnection: true,
      });
      return;
    }
    open.add(res);
    res.once('close', finished);
    if (state !== 'SERVING') retire(res);
    next();
  };

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
      value: () => {
        drain();
        state = 'CLOSED';
      },
    },
    whenIdle: { value: whenIdle },
  });
  return handler as ShutdownGate;
}
