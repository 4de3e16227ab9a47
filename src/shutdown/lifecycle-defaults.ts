/**
 * Defaults of `createLifecycle`. In a file of their own so that the configuration (which the
 * tracing preload loads) can take `SHUTDOWN_*` defaults from here without loading terminus.
 */
export const LIFECYCLE_DEFAULTS = Object.freeze({
  delayMs: 0,
  drainTimeoutMs: 30_000,
  lingerMs: 250,
  phaseTimeoutMs: 5_000,
  signals: Object.freeze(['SIGTERM', 'SIGINT'] as NodeJS.Signals[]),
});
