import type { Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { createTerminus } from '@godaddy/terminus';
import { nonNegativeInteger, positiveInteger } from '../internal/options';
import { withTimeout } from '../internal/with-timeout';
import { LIFECYCLE_DEFAULTS } from './lifecycle-defaults';
import type { ShutdownGate } from './shutdown-gate';

/** How long the listener's remaining sockets get to close after the drain (not an option). */
const SOCKET_GRACE_MS = 1_000;

/**
 * One step of the cleanup after the HTTP drain, with its own time limit. `run` may return
 * anything: a promise (or thenable) is awaited and its value ignored, so
 * `run: () => closeRedisClient(redis)` fits as it is; a throw or a rejection fails the phase.
 */
export interface CleanupPhase {
  readonly name: string;
  readonly run: () => unknown;
  /** Default {@link LIFECYCLE_DEFAULTS.phaseTimeoutMs}. */
  readonly timeoutMs?: number;
}

/** The minimal logger the lifecycle writes to (pino, console, ...). */
export interface LifecycleLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** What happened during one shutdown; logged, and the basis of the exit code. */
export interface ShutdownReport {
  readonly signal: string;
  /** `true` when every request in flight finished within the drain timeout. */
  readonly drained: boolean;
  /** From the signal to the end of the HTTP drain, ms. */
  readonly drainMs: number;
  readonly phases: readonly { readonly name: string; readonly ms: number; readonly ok: boolean; readonly error?: string }[];
  /** 0 when drained and every phase succeeded, else 1. */
  readonly exitCode: 0 | 1;
}

/** Options of {@link createLifecycle}. */
export interface LifecycleOptions {
  /** The HTTP server, before it accepts connections. */
  readonly server: Server;
  readonly gate: ShutdownGate;
  /** Keep serving (with `Connection: close`) this long after the signal, for load balancers to notice. */
  readonly delayMs?: number;
  /** Longest wait for requests in flight once the gate has closed. */
  readonly drainTimeoutMs?: number;
  /**
   * After the last request in flight, keep answering 503 this long before the listener
   * closes: a client that was just told `Connection: close` reconnects into a clean 503 instead
   * of a refused connection.
   */
  readonly lingerMs?: number;
  /** Run in order after the HTTP drain: workers, Redis, Postgres, tracing. */
  readonly cleanup?: readonly CleanupPhase[];
  readonly signals?: readonly NodeJS.Signals[];
  readonly logger?: LifecycleLogger;
  /** Called once when the first signal arrives (readiness already fails through the gate). */
  readonly onShutdownStart?: (signal: string) => void;
  /** Called with the report before the process exits. */
  readonly onShutdownEnd?: (report: ShutdownReport) => void;
  /** How to end the process; default `process.exit`. */
  readonly exit?: (code: number) => void;
}

/** Defaults of {@link createLifecycle}. */
export { LIFECYCLE_DEFAULTS };

/** A running lifecycle. */
export interface Lifecycle {
  /** `true` from the first signal on. */
  readonly shuttingDown: boolean;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs one cleanup phase; rejects when it fails or outlives `ms`. */
async function runPhase({ name, run }: CleanupPhase, ms: number): Promise<void> {
  await withTimeout(run(), ms, () => {
    throw new Error(`${name} did not finish within ${ms} ms`);
  });
}

/**
 * Wires SIGTERM/SIGINT (through `@godaddy/terminus`, once: a second signal does not restart
 * the sequence) to the shutdown sequence:
 * 1. the gate drains at once (readiness fails, `/health/live` stays 200, responses say
 *    `Connection: close`) and stays open `delayMs`;
 * 2. the gate closes: new requests get 503 `SERVER_SHUTTING_DOWN`, and so do requests in flight
 *    whose body is still arriving (their connections close after it); the other requests in
 *    flight get up to `drainTimeoutMs` (then their connections are cut);
 * 3. after `lingerMs` the listener closes and idle sockets are ended;
 * 4. the cleanup phases run in order, each bounded by its own timeout;
 * 5. the process exits 0, or 1 when the drain timed out or a phase failed.
 */
export function createLifecycle(options: LifecycleOptions): Lifecycle {
  const d = LIFECYCLE_DEFAULTS;
  const { server, gate, logger } = options;
  const delayMs = nonNegativeInteger('lifecycle', 'delayMs', options.delayMs ?? d.delayMs);
  const drainTimeoutMs = positiveInteger('lifecycle', 'drainTimeoutMs', options.drainTimeoutMs ?? d.drainTimeoutMs);
  const lingerMs = nonNegativeInteger('lifecycle', 'lingerMs', options.lingerMs ?? d.lingerMs);
  const signals = [...(options.signals ?? d.signals)];
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const cleanup = options.cleanup ?? [];
  for (const phase of cleanup) {
    positiveInteger('lifecycle', `cleanup "${phase.name}" timeoutMs`, phase.timeoutMs ?? d.phaseTimeoutMs);
  }

  let shuttingDown = false;
  let signalName = '';
  let started = 0;
  let drained = true;
  let drainMs = 0;
  const phases: { name: string; ms: number; ok: boolean; error?: string }[] = [];

  // terminus ignores repeated signals; say so in the log.
  for (const signal of signals) {
    process.on(signal, () => {
      if (!shuttingDown) {
        shuttingDown = true;
        signalName = signal;
        started = performance.now();
        gate.drain();
        logger?.info({ signal, delayMs, drainTimeoutMs }, 'shutdown started');
        options.onShutdownStart?.(signal);
      } else {
        logger?.warn({ signal }, 'shutdown already in progress; signal ignored');
      }
    });
  }

  createTerminus(server, {
    signals,
    useExit0: true,
    timeout: SOCKET_GRACE_MS,
    // Health routes are the application's (Express) routes, not terminus's.
    healthChecks: {},
    logger: (msg: string, err: Error) => logger?.error({ err: { message: err.message } }, msg),
    beforeShutdown: async () => {
      if (delayMs > 0) await sleep(delayMs);
      // Requests whose body was still arriving are answered 503 now rather than waited for.
      const refused = gate.close();
      logger?.info({ inFlight: gate.inFlight - refused, refused }, 'gate closed');
      drained = await gate.whenIdle(drainTimeoutMs);
      if (!drained) {
        logger?.error({ inFlight: gate.inFlight, drainTimeoutMs }, 'drain timed out; closing the remaining connections');
        server.closeAllConnections();
      } else if (lingerMs > 0) {
        await sleep(lingerMs);
      }
      drainMs = Math.round(performance.now() - started);
      server.closeIdleConnections();
    },
    onSignal: async () => {
      for (const phase of cleanup) {
        const t = performance.now();
        try {
          await runPhase(phase, phase.timeoutMs ?? d.phaseTimeoutMs);
          phases.push({ name: phase.name, ms: Math.round(performance.now() - t), ok: true });
        } catch (err) {
          const error = err instanceof Error ? err.message : String(err);
          phases.push({ name: phase.name, ms: Math.round(performance.now() - t), ok: false, error });
          logger?.error({ phase: phase.name, error }, 'cleanup phase failed');
        }
      }
    },
    onShutdown: async () => {
      const report: ShutdownReport = {
        signal: signalName,
        drained,
        drainMs,
        phases,
        exitCode: drained && phases.every((p) => p.ok) ? 0 : 1,
      };
      logger?.info({ ...report, totalMs: Math.round(performance.now() - started) }, 'shutdown complete');
      options.onShutdownEnd?.(report);
      // terminus exits 0 after this; a failed drain or phase must not look clean.
      if (report.exitCode !== 0) exit(report.exitCode);
    },
  });

  return {
    get shuttingDown() {
      return shuttingDown;
    },
  };
}
