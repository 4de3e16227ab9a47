import { HEALTH_PATHS } from '../constants';

/**
 * Defaults of `createLoadShedder`. In a file of their own so that the configuration (which the
 * tracing preload loads) can take `LOAD_SHED_*` defaults from here without loading the shedder.
 */
export const LOAD_SHEDDER_DEFAULTS = Object.freeze({
  maxEventLoopDelayMs: 200,
  maxInFlight: 1000,
  sampleIntervalMs: 500,
  retryAfterSeconds: 1,
  exemptPaths: HEALTH_PATHS.all,
});
