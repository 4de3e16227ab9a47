import { performance } from 'node:perf_hooks';
import type { RequestHandler } from 'express';
import { OptionsError, positiveNumber } from '../internal/options';
import { withTimeout } from '../internal/with-timeout';
import { liveness } from './live';

/** A dependency check: resolves when healthy, rejects (with a short reason) when not. */
export interface HealthCheck {
  /** Body key: `db`, `redis`, ... */
  readonly name: string;
  readonly run: () => Promise<void>;
  /** Longest wait for `run`. Default {@link HEALTH_DEFAULTS.timeoutMs}. */
  readonly timeoutMs?: number;
  /**
   * Whether readiness fails when this check fails (default `true`). A failing non-critical
   * check (a dependency the service can do without, such as a read replica it falls back
   * from) makes readiness 200 `degraded` instead of 503.
   */
  readonly critical?: boolean;
}

/** The latest result of a check. */
export interface CheckResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly ms: number;
  /** `performance.now()` when the result was taken. */
  readonly at: number;
}

/** Options of {@link createHealth}. */
export interface HealthOptions {
  readonly checks: readonly HealthCheck[];
  /** `true` once shutdown has begun: readiness then fails at once, without running checks. */
  readonly isShuttingDown?: () => boolean;
  /** `true` once start-up has finished (for `/health/started`). Default: always. */
  readonly isStarted?: () => boolean;
  /** A result younger than this is reused: probes never pile onto a dependency. */
  readonly cacheMs?: number;
  /** Told about every finished check, e.g. for metrics. */
  readonly onCheck?: (name: string, result: CheckResult) => void;
}

/** Defaults of {@link createHealth}. */
export const HEALTH_DEFAULTS = Object.freeze({ timeoutMs: 1_000, cacheMs: 1_000 });

/** The three probe handlers and the state behind them. */
export interface Health {
  /** `GET /health/live`: 200 while the process runs; touches no dependency. */
  live(): RequestHandler;
  /**
   * `GET /health/ready`: 200 `healthy` when every check passes, 200 `degraded` when only
   * non-critical checks fail, else 503 `unhealthy`; 503 at once during shutdown.
   */
  ready(): RequestHandler;
  /** `GET /health/started`: 200 once start-up has finished, else 503. */
  started(): RequestHandler;
  /** Runs (or reuses) every check; never waits longer than the slowest check's timeout. */
  evaluate(): Promise<ReadonlyMap<string, CheckResult>>;
}

interface CheckState {
  readonly check: HealthCheck;
  readonly timeoutMs: number;
  last: CheckResult | undefined;
  /** The run in progress, and when it began: at most one per dependency. */
  running: Promise<CheckResult> | undefined;
  runningSince: number;
}

const reason = (err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 200);

function send(res: Parameters<RequestHandler>[1], status: number, body: object): void {
  res.setHeader('Cache-Control', 'no-store');
  res.status(status).json(body);
}

/**
 * Health probes that never hang: each check has its own timeout, results are cached briefly,
 * and a dependency that hangs gets at most one check in flight: later probes answer from the
 * hung check's age instead of piling up.
 */
export function createHealth(options: HealthOptions): Health {
  const cacheMs = options.cacheMs ?? HEALTH_DEFAULTS.cacheMs;
  const names = new Set<string>();
  const states: CheckState[] = options.checks.map((check) => {
    if (names.has(check.name)) {
      throw new OptionsError(
        'health',
        'checks',
        'uniquely named',
        options.checks.map((c) => c.name),
      );
    }
    names.add(check.name);
    const option = `check "${check.name}" timeoutMs`;
    const timeoutMs = positiveNumber('health', option, check.timeoutMs ?? HEALTH_DEFAULTS.timeoutMs);
    return { check, timeoutMs, last: undefined, running: undefined, runningSince: 0 };
  });

  function start(s: CheckState): Promise<CheckResult> {
    const t0 = performance.now();
    s.runningSince = t0;
    const run = (async () => {
      let result: CheckResult;
      try {
        await s.check.run();
        result = { ok: true, ms: performance.now() - t0, at: performance.now() };
      } catch (err) {
        result = { ok: false, error: reason(err), ms: performance.now() - t0, at: performance.now() };
      }
      s.last = result;
      s.running = undefined;
      options.onCheck?.(s.check.name, result);
      return result;
    })();
    s.running = run;
    return run;
  }

  async function evaluateOne(s: CheckState): Promise<CheckResult> {
    const now = performance.now();
    if (s.last !== undefined && now - s.last.at < cacheMs && s.running === undefined) return s.last;
    if (s.running !== undefined && now - s.runningSince >= s.timeoutMs) {
      // Hung: report it without starting another.
      return { ok: false, error: `no answer for ${Math.round(now - s.runningSince)} ms`, ms: now - s.runningSince, at: now };
    }
    // Bounded by the check's start, not this probe's: a second probe joins the same run.
    return withTimeout(s.running ?? start(s), s.timeoutMs - (performance.now() - s.runningSince), () => ({
      ok: false,
      error: `timed out after ${s.timeoutMs} ms`,
      ms: s.timeoutMs,
      at: performance.now(),
    }));
  }

  async function evaluate(): Promise<ReadonlyMap<string, CheckResult>> {
    const results = await Promise.all(states.map(evaluateOne));
    return new Map(states.map((s, i) => [s.check.name, results[i] as CheckResult]));
  }

  return {
    live: liveness,
    ready() {
      return (_req, res, next) => {
        if (options.isShuttingDown?.() === true) {
          send(res, 503, { status: 'unhealthy', reason: 'shutting_down' });
          return;
        }
        evaluate().then((results) => {
          const body: Record<string, unknown> = { status: 'healthy' };
          const errors: Record<string, string> = {};
          let criticalFailed = false;
          for (const s of states) {
            const r = results.get(s.check.name) as CheckResult;
            body[s.check.name] = r.ok ? 'connected' : 'disconnected';
            if (r.ok) continue;
            errors[s.check.name] = r.error ?? 'failed';
            if (s.check.critical !== false) criticalFailed = true;
          }
          if (Object.keys(errors).length === 0) send(res, 200, body);
          else if (criticalFailed) send(res, 503, { ...body, status: 'unhealthy', error: errors });
          else send(res, 200, { ...body, status: 'degraded', error: errors });
        }, next);
      };
    },
    started() {
      return (_req, res) => {
        if (options.isStarted?.() === false) send(res, 503, { status: 'starting' });
        else send(res, 200, { status: 'started' });
      };
    },
    evaluate,
  };
}
