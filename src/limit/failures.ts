import type { NextFunction, Response } from 'express';
import { sendError } from '../errors';
import { isStoreMisuse } from './breakers';
import type { BackendFailure, RateLimitObserver } from './observer';
import type { Plan } from './plan';
import { StoreUnavailableError } from './store-unavailable';

/** Backend failures reach `onBackendError` at most this often. */
const REPORT_INTERVAL_MS = 1000;
const GENERIC_DETAIL = 'The rate limiter is unavailable; try again shortly';

/** The failure behind each 503 `RATE_LIMITER_UNAVAILABLE` a limiter answered. */
const failedResponses = new WeakMap<object, Error>();

/**
 * The store failure behind `res`'s 503 `RATE_LIMITER_UNAVAILABLE`, when a limiter could not
 * decide for it and the policy fails closed, as the limiter's `onBackendError` would get it
 * (`connect ECONNREFUSED 127.0.0.1:6379` for a Redis store whose client cannot connect): for
 * the request's log line. `undefined` for any other response (a request let through by a
 * policy that fails open goes on to its route, whose outcome is its own). Set only on such a
 * failure: a decided request costs nothing.
 */
export function rateLimitFailure(res: object): Error | undefined {
  return failedResponses.get(res);
}

export interface FailureReporterOptions {
  readonly storeName: string;
  readonly deadlineMs: number;
  readonly observer: RateLimitObserver | undefined;
  readonly onBackendError: ((err: Error) => void) | undefined;
  /** The failure domain a failed decision went to. */
  readonly domainOf: (err: unknown) => string;
}

/** What the limiter does with a failed decision: count it, report it, say it in the 503. */
export interface FailureReporter {
  /** Counts and reports a failure (onBackendError at most once a second); returns it as reported. */
  report(err: unknown): Error;
  /** The 503's detail for a reported failure, made once per distinct cause. */
  detail(e: Error): string;
  /**
   * A decision that failed: a misuse of the store goes to the app's error handler; an outage is
   * reported, then let through (every policy fails open) or answered 503 `RATE_LIMITER_UNAVAILABLE`.
   */
  answer(err: unknown, p: Plan, res: Response, next: NextFunction): void;
}

export function createFailureReporter(options: FailureReporterOptions): FailureReporter {
  const { storeName, observer, onBackendError } = options;
  let lastErrorReport = 0;
  /** The last failure other than an open breaker's refusal: what opened it, said when it refuses. */
  let lastFailure: Error | undefined;
  /** The refusal of an open breaker as reported, made once per {@link lastFailure}. */
  let breakerOpen: { after: Error; err: Error } | undefined;

  function report(err: unknown): Error {
    let e = err instanceof Error ? err : new Error(String(err));
    const code = (e as Error & { code?: unknown }).code;
    const reason: BackendFailure = code === 'ETIMEDOUT' ? 'timeout' : code === 'EOPENBREAKER' ? 'breaker_open' : 'error';
    observer?.backendError(storeName, reason, options.domainOf(err));
    if (code !== 'EOPENBREAKER') lastFailure = e;
    else if (lastFailure !== undefined) {
      // opossum says only "Breaker is open": say what opened it.
      if (breakerOpen?.after !== lastFailure) {
        const message = `circuit breaker open after: ${lastFailure.message}`;
        const opened =
          lastFailure instanceof StoreUnavailableError
            ? new StoreUnavailableError(message, { cause: e })
            : new Error(message, { cause: e });
        breakerOpen = { after: lastFailure, err: Object.assign(opened, { code: 'EOPENBREAKER' }) };
      }
      e = breakerOpen.err;
    }
    const now = Date.now();
    if (onBackendError !== undefined && now - lastErrorReport >= REPORT_INTERVAL_MS) {
      lastErrorReport = now;
      onBackendError(e);
    }
    return e;
  }

  /**
   * What a 503 says of a failure: a cause the store vouched for (a {@link StoreUnavailableError}:
   * errno and address), the deadline, or the open breaker (and what opened it); nothing of any
   * other error, whose message was not written for clients.
   */
  function publicCause(e: Error): string | undefined {
    const code = (e as Error & { code?: unknown }).code;
    if (e instanceof StoreUnavailableError) return e.message;
    if (code === 'ETIMEDOUT') return `no answer within ${options.deadlineMs} ms`;
    if (code !== 'EOPENBREAKER') return undefined;
    const after = lastFailure === undefined ? undefined : publicCause(lastFailure);
    return after === undefined ? 'circuit breaker open' : `circuit breaker open after: ${after}`;
  }
  let unavailableDetail = { cause: '', detail: GENERIC_DETAIL };
  function detail(e: Error): string {
    const cause = publicCause(e) ?? '';
    if (cause !== unavailableDetail.cause)
      unavailableDetail = {
        cause,
        detail: cause === '' ? GENERIC_DETAIL : `The rate limiter is unavailable (${cause}); try again shortly`,
      };
    return unavailableDetail.detail;
  }

  function answer(err: unknown, p: Plan, res: Response, next: NextFunction): void {
    if (isStoreMisuse(err)) {
      // Not an outage: no fail mode, no breaker, no backend error; the app's error handler.
      next(new Error(`rate limiter: the store was called wrongly (${(err as Error).message})`, { cause: err }));
      return;
    }
    const e = report(err);
    if (p.failOpen) {
      p.counters.failedOpen();
      next();
      return;
    }
    p.counters.failedClosed();
    failedResponses.set(res, e);
    sendError(res, 'RATE_LIMITER_UNAVAILABLE', detail(e), { retryAfterSeconds: 1 });
  }

  return { report, detail, answer };
}
