// Preload entry: `node --require rampart/dist/tracing/register.js app.js`. Starts tracing
// before express, pg and ioredis load, when TRACING_ENABLED=true; otherwise does nothing.
// A bad environment is left to the application's own start-up to report (one message).
import pino from 'pino';
import { ConfigError, loadConfig, type Config } from '../config';
import { setActiveTracing } from './active-tracing';
import { startTracing } from './start-tracing';

function start(): void {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) return;
    throw err;
  }
  if (!config.tracing.enabled) return;
  const logger = pino({ level: 'warn', base: { component: 'tracing' } });
  if (config.tracing.endpoint === undefined) {
    logger.warn({ endpoint: 'http://localhost:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT is not set; exporting to the local default');
  }
  setActiveTracing(startTracing({ config: config.tracing, logger }));
}

start();
