import type { Socket } from 'node:net';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { HEALTH_PATHS } from '../constants';
import { sendError } from '../errors';
import { nonNegativeInteger, nonNegativeNumber, positiveNumber } from '../internal/options';
import { LOAD_SHEDDER_DEFAULTS } from './load-shedder-defaults';

/** Why a request was shed. */
export type ShedReason = 'event_loop_delay' | 'in_flight';

/** Options of {@link createLoadShedder}. */
export interface LoadShedderOptions {
  /**
   * Two limits in one, ms. Within one event-loop turn, requests arriving after this much work
   * in the turn are shed. And when the p95 event-loop delay of the last window is above it,
   * admission falls linearly from 100% at this value to 0% at twice it (a p95: one long pause
   * among quick turns sheds nothing). 0 turns both off.
   */
  readonly maxEventLoopDelayMs?: number;
  /** Requests inside the shedder at once; the next one is shed. 0 turns the limit off. */
  readonly maxInFlight?: number;
  /** Length of the window the delay is measured over, ms. */
  readonly sampleIntervalMs?: number;
  /** `Retry-After` of the 503, seconds. */
  readonly retryAfterSeconds?: number;
  /**
   * Paths (exact `req.path`) never shed, in addition to `/health/live`, which is never shed
   * whatever this says. Default: the three health routes ({@link HEALTH_PATHS}).
   */
  readonly exemptPaths?: readonly string[];
  /** Called once per shed request (metrics, logs). */
  readonly onShed?: (reason: ShedReason, req: Request) => void;
  /** Source of randomness for the admission ramp, `[0, 1)`. Default `Math.random`. */
  readonly random?: () => number;
}

/** Defaults of {@link createLoadShedder}. */
export { LOAD_SHEDDER_DEFAULTS };

/** The path no shedder ever rejects: a busy process is alive, and must not be restarted for it. */
const ALWAYS_EXEMPT = HEALTH_PATHS.live;
/** Resolution of the event-loop delay histogram, ms. */
const RESOLUTION_MS = 10;

/** What the shedder currently sees. */
export interface LoadState {
  /** p95 event-loop delay of the last complete window, ms (resolution subtracted). */
  readonly eventLoopDelayMs: number;
  /** Requests inside the shedder now. */
  readonly inFlight: number;
  /** Fraction of requests the delay signal admits now, 0..1. */
  readonly admitRatio: number;
}

/**
 * A middleware that answers 503 `OVERLOADED` (with `Retry-After`) instead of taking on work
 * the process cannot do in time. Mount it after the shutdown gate and the probes, before
 * anything expensive.
 */
export interface LoadShedder extends RequestHandler {
  readonly state: LoadState;
  /** Stops the delay sampler. The per-turn budget and the in-flight limit keep working. */
  close(): void;
}

/** Creates a load shedder. Each has its own sampler and counters. */
export function createLoadShedder(options: LoadShedderOptions = {}): LoadShedder {
  const d = LOAD_SHEDDER_DEFAULTS;
  const maxDelay = nonNegativeNumber('loadShedder', 'maxEventLoopDelayMs', options.maxEventLoopDelayMs ?? d.maxEventLoopDelayMs);
  const maxInFlight = nonNegativeInteger('loadShedder', 'maxInFlight', options.maxInFlight ?? d.maxInFlight);
  const interval = positiveNumber('loadShedder', 'sampleIntervalMs', options.sampleIntervalMs ?? d.sampleIntervalMs);
  const retryAfter = positiveNumber('loadShedder', 'retryAfterSeconds', options.retryAfterSeconds ?? d.retryAfterSeconds);
  const exempt = new Set(options.exemptPaths ?? d.exemptPaths);
  exempt.add(ALWAYS_EXEMPT);
  const random = options.random ?? Math.random;
  const onShed = options.onShed;

  let delayMs = 0;
  let admitRatio = 1;
  let inFlight = 0;
  let histogram: IntervalHistogram | undefined;
  let timer: NodeJS.Timeout | undefined;

  if (maxDelay > 0) {
    const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    h.enable();
    histogram = h;
    // A timer that re-arms itself: under load the samples cannot pile up behind each other.
    const sample = (): void => {
      // The histogram records whole timer periods; the resolution is the part that is not delay.
      // p95: a window holds ~50 samples, of which a p99 would be the largest (one GC pause).
      delayMs = h.count === 0 ? 0 : Math.max(0, h.percentile(95) / 1e6 - RESOLUTION_MS);
      h.reset();
      admitRatio = delayMs <= maxDelay ? 1 : Math.max(0, 1 - (delayMs - maxDelay) / maxDelay);
      timer = setTimeout(sample, interval);
      timer.unref();
    };
    timer = setTimeout(sample, interval);
    timer.unref();
  }

  function shed(req: Request, res: Response, reason: ShedReason): void {
    onShed?.(reason, req);
    const detail =
      reason === 'in_flight'
        ? 'The server is at its limit of concurrent requests; retry shortly'
        : 'The server is overloaded; retry shortly';
    sendError(res, 'OVERLOADED', detail, { retryAfterSeconds: retryAfter });
  }

  // One 'close' listener per connection, however many pipelined requests it carries, finishing
  // those of its requests still counted in.
  const pendingBySocket = new WeakMap<Socket, Set<() => void>>();
  function pendingOn(socket: Socket): Set<() => void> {
    let pending = pendingBySocket.get(socket);
    if (pending === undefined) {
      const set = new Set<() => void>();
      pending = set;
      pendingBySocket.set(socket, set);
      socket.once('close', () => {
        for (const finish of [...set]) finish();
      });
    }
    return pending;
  }

  // The current event-loop turn: when the first request of the turn arrived. Requests read in
  // one turn (one poll of the sockets) are handled one after another; past `maxDelay` of work in
  // this turn, everything else waiting (other requests, timers, probes) is already that late.
  let turnStart = -1;
  const endTurn = (): void => {
    turnStart = -1;
  };

  const handler = (req: Request, res: Response, next: NextFunction): void => {
    if (exempt.has(req.path)) {
      next();
      return;
    }
    if (maxInFlight > 0 && inFlight >= maxInFlight) {
      shed(req, res, 'in_flight');
      return;
    }
    if (maxDelay > 0) {
      const now = performance.now();
      if (turnStart < 0) {
        turnStart = now;
        setImmediate(endTurn);
      } else if (now - turnStart > maxDelay) {
        shed(req, res, 'event_loop_delay');
        return;
      }
    }
    if (admitRatio < 1 && random() >= admitRatio) {
      shed(req, res, 'event_loop_delay');
      return;
    }
    inFlight++;
    // Out on the response's end, or on its connection's: a pipelined request still queued
    // behind another when the client hangs up never sees its response close.
    const pending = pendingOn(req.socket);
    const finished = (): void => {
      if (!pending.delete(finished)) return;
      inFlight--;
      res.removeListener('close', finished);
    };
    pending.add(finished);
    res.once('close', finished);
    next();
  };

  return Object.defineProperties(handler, {
    state: {
      get: (): LoadState => ({ eventLoopDelayMs: delayMs, inFlight, admitRatio }),
      enumerable: true,
    },
    close: {
      value: (): void => {
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
        histogram?.disable();
        histogram = undefined;
        delayMs = 0;
        admitRatio = 1;
      },
    },
  }) as LoadShedder;
}
