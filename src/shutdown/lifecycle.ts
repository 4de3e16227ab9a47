import type { Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { createTerminus } from '@godaddy/terminus';
import type { ShutdownGate } from './shutdown-gate';

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
export const LIFECYCLE_DEFAULTS = Object.freeze({
  delayMs: 0,
  drainTimeoutMs: 30_000,
  lingerMs: 250,
  phaseTimeoutMs: 5_000,
  /** How long the listener's remaining sockets get to close after the drain. */
  socketGraceMs: 1_000,
  signals: Object.freeze(['SIGTERM', 'SIGINT'] as NodeJS.Signals[]),
});

/** A running lifecycle. */
export interface Lifecycle {
  /** `true` from the first signal on. */
  readonly shuttingDown: boolean;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function withTimeout(run: () => unknown, ms: number, name: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} did not finish within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([run(), limit]);
  } finally {
    clearTimeout(timer);
  }
}

function checkMs(value: number, what: string, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new TypeError(`lifecycle: ${what} must be an integer >= ${min}, got ${value}`);
  return value;
}

/**
 * Wires SIGTERM/SIGINT (through `@godaddy/terminus`, once: a second signal does not restart
 * the sequence) to the shutdown sequence:
 * 1. the gate drains at once (readiness fails, `/health/live` stays 200, responses say
 *    `Connection: close`) and stays open `delayMs`;
 * 2. the gate closes: new requests get 503 `SERVER_SHUTTING_DOWN`; requests in flight get up to
 *    `drainTimeoutMs` (then their connections are cut);
 * 3. after `lingerMs` the listener closes and idle sockets are ended;
 * 4. the cleanup phases run in order, each bounded by its own timeout;
 * 5. the process exits 0, or 1 when the drain timed out or a phase failed.
 */
export function createLifecycle(options: LifecycleOptions): Lifecycle {
  const d = LIFECYCLE_DEFAULTS;
  const { server, gate, logger } = options;
  const delayMs = checkMs(options.delayMs ?? d.delayMs, 'delayMs', 0);
  const drainTimeoutMs = checkMs(options.drainTimeoutMs ?? d.drainTimeoutMs, 'drainTimeoutMs', 1);
  const lingerMs = checkMs(options.lingerMs ?? d.lingerMs, 'lingerMs', 0);
  const signals = [...(options.signals ?? d.signals)];
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const cleanup = options.cleanup ?? [];
  for (const phase of cleanup) checkMs(phase.timeoutMs ?? d.phaseTimeoutMs, `cleanup "${phase.name}" timeoutMs`, 1);

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
    timeout: d.socketGraceMs,
    // Health routes are the application's (Express) routes, not terminus's.
    healthChecks: {},
    logger: (msg: string, err: Error) => logger?.error({ err: { message: err.message } }, msg),
    beforeShutdown: async () => {
      if (delayMs > 0) await sleep(delayMs);
      gate.close();
      logger?.info({ inFlight: gate.inFlight }, 'gate closed');
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
          await withTimeout(phase.run, phase.timeoutMs ?? d.phaseTimeoutMs, phase.name);
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
