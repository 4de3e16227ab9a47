import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import {
  activeTracing,
  ConfigError,
  createHealth,
  createLifecycle,
  createLoadShedder,
  createMetrics,
  createShutdownGate,
  HEALTH_PATHS,
  loadConfig,
  METRICS_PATH,
  redisCheck,
  REDIS_CLIENT_DEFAULTS,
  type CleanupPhase,
  type Config,
  type HealthCheck,
  type Metrics,
} from '../index';
import { createApp } from './app';
import { createDatabase, databaseChecks, DATABASE_DEFAULTS } from './db/database';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded-postgres';
import { migrate } from './db/migrations';
import { createHttpServer } from './http-server';
import { createLogger } from './logger';
import { startMetricsListener, type MetricsListener } from './metrics-listener';
import { certificateProblem, createRateLimiting, permissionProblem, type RateLimiting } from './rate-limiting';
import { startSessionReaper } from './session-reaper';

/** Exit code of a refused configuration (sysexits EX_CONFIG). */
export const EXIT_CONFIG = 78;
/** Time limit of each readiness check. */
const HEALTH_TIMEOUT_MS = 500;
/** Time limit of the last tracing export at shutdown. */
const TRACING_FLUSH_MS = 5_000;

function readVersion(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
}

function refuse(err: ConfigError): void {
  process.stderr.write(`rampart: refusing to start: ${err.message}\n`);
  process.exitCode = EXIT_CONFIG;
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    refuse(err);
    return;
  }
  const logger = createLogger(config.logLevel);
  const metrics = createMetrics();
  // The span export, counted from the start (the preload started tracing before the app).
  const spans = activeTracing()?.spans;
  if (spans !== undefined) metrics.observeSpans(spans);

  // Metrics on a listener of their own are bound first: a port in use refuses the start before
  // anything else is opened, and Prometheus sees the start-up too.
  let metricsListener: MetricsListener | undefined;
  if (config.metrics.port !== undefined) {
    try {
      metricsListener = await startMetricsListener(metrics, {
        port: config.metrics.port,
        host: config.metrics.host,
        onInternalError: (err) => logger.error({ err }, 'metrics scrape failed'),
      });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      refuse(err);
      return;
    }
  } else if (config.mode === 'prod') {
    logger.warn('METRICS_PORT=public: /metrics is served on the public port, to anyone who reaches it');
  }
  let serving = false;
  try {
    serving = await serve(config, logger, metrics, metricsListener);
  } finally {
    // A start that did not get as far as listening must not be kept alive by the metrics listener.
    if (!serving) await metricsListener?.close();
  }
}

/** Whether the Redis client makes TLS connections (REDIS_URL's scheme, REDIS_SENTINEL_TLS). */
function usesTls(config: Config): boolean {
  const url = config.rateLimit.redisUrl ?? '';
  return url.startsWith('rediss') || config.rateLimit.redis.sentinelTls === true;
}

/** Everything after the configuration and the metrics listener; resolves `true` once listening, `false` on a refusal. */
async function serve(config: Config, logger: Logger, metrics: Metrics, metricsListener: MetricsListener | undefined): Promise<boolean> {
  let rateLimiting: RateLimiting | undefined;
  if (config.rateLimit.enabled) {
    try {
      rateLimiting = createRateLimiting(config, logger, metrics, { watchPolicies: true });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      refuse(err);
      return false;
    }
    // Over TLS, a certificate refused at the first connection is a misconfiguration (the wrong
    // CA, a name the certificate does not give): refused here, naming the variable, rather than
    // served as an outage for ever. Redis down or slow does not stop the start.
    const redis = rateLimiting.redis;
    if (redis !== undefined && usesTls(config)) {
      const problem = await certificateProblem(redis, REDIS_CLIENT_DEFAULTS.connectTimeoutMs + 1_000);
      if (problem !== undefined) {
        await rateLimiting.close();
        refuse(problem);
        return false;
      }
    }
    // So is a Redis user without a command or the key space the scripts need (an ACL made for
    // another app): every decision would fail as an outage. Redis down or slow does not stop the start.
    if (redis !== undefined) {
      const problem = await permissionProblem(redis, REDIS_CLIENT_DEFAULTS.connectTimeoutMs + 1_000);
      if (problem !== undefined) {
        await rateLimiting.close();
        refuse(problem);
        return false;
      }
    }
  }

  let embedded: EmbeddedPostgres | undefined;
  let writeUrl = config.database.writeUrl;
  if (writeUrl === undefined) {
    embedded = await startEmbeddedPostgres();
    writeUrl = embedded.url;
    logger.warn('no DATABASE_URL: using an embedded in-memory Postgres (data is lost on exit)');
  }
  const db = createDatabase({
    writeUrl,
    ...(config.database.readUrl === undefined ? {} : { readUrl: config.database.readUrl }),
    ...(embedded === undefined ? {} : { maxConnections: embedded.maxConnections }),
    onPoolError: (err) => logger.warn({ err }, 'idle database connection failed'),
    breaker: { preset: config.database.breakerPreset },
    breakerObserver: {
      circuitChanged(name, state, from) {
        metrics.breakers.circuitChanged(name, state, from);
        if (from !== undefined)
          logger[state === 'OPEN' ? 'warn' : 'info']({ breaker: name, state, from }, 'database circuit breaker changed');
      },
    },
    onReplicaFailover: (err) =>
      logger.warn(
        { err, retryMs: DATABASE_DEFAULTS.replicaRetryMs },
        'read replica unreachable: reads go to the primary until it is tried again',
      ),
  });
  try {
    const applied = await migrate(db.write, db.schema);
    logger.info({ applied }, 'database migrations applied');
  } catch (err) {
    await db.close().catch(() => undefined);
    await embedded?.close().catch(() => undefined);
    await rateLimiting?.close().catch(() => undefined);
    throw new Error(`database migrations failed: ${err instanceof Error ? err.message : String(err)}`);
  }

  metrics.observePool('db_write', db.write);
  if (db.replica !== undefined) metrics.observePool('db_read', db.replica);
  const reaper = startSessionReaper(db, logger, 60_000);
  // Probes and metrics are answered until their listener closes: Prometheus sees the drain. On a
  // listener of their own, metrics never pass the gate and stay up through the cleanup (closed
  // last); on the public port they are exempt like the probes.
  const gate = createShutdownGate({ exemptPaths: [...HEALTH_PATHS.all, ...(metricsListener === undefined ? [METRICS_PATH] : [])] });
  metrics.lifecycle.shutdownLimitSeconds.set((config.shutdown.delayMs + config.shutdown.drainTimeoutMs) / 1000);
  metrics.observeInFlight(gate);
  let started = false;
  // The primary is critical; a replica is not (reads fall back to the primary): readiness 200 "degraded".
  const checks: HealthCheck[] = databaseChecks(db, HEALTH_TIMEOUT_MS);
  if (rateLimiting?.redis !== undefined) {
    checks.push({ name: 'redis', run: redisCheck(rateLimiting.redis), timeoutMs: HEALTH_TIMEOUT_MS });
  }
  const health = createHealth({
    checks,
    isShuttingDown: () => gate.state !== 'SERVING',
    isStarted: () => started,
    onCheck: (name, result) => {
      metrics.lifecycle.healthCheckSeconds.labels(name).observe(result.ms / 1000);
      metrics.lifecycle.healthCheckUp.labels(name).set(result.ok ? 1 : 0);
    },
  });
  const shedder = config.loadShed.enabled
    ? createLoadShedder({
        maxEventLoopDelayMs: config.loadShed.maxEventLoopDelayMs,
        maxInFlight: config.loadShed.maxInFlight,
        onShed: (reason) => metrics.lifecycle.loadShed.labels(reason).inc(),
      })
    : undefined;
  const app = createApp({
    config,
    db,
    logger,
    gate,
    health,
    version: readVersion(),
    // Off the public port when they have a listener of their own: there /metrics is our 404.
    ...(metricsListener === undefined ? { metrics } : {}),
    ...(rateLimiting === undefined ? {} : { limiter: rateLimiting.limiter }),
    ...(shedder === undefined ? {} : { shedder }),
  });
  const server = createHttpServer(app);

  // Cleanup order after the HTTP drain: workers, Redis, Postgres, tracing, then the metrics
  // listener (Prometheus can watch the whole shutdown).
  const cleanup: CleanupPhase[] = [
    {
      name: 'workers',
      run: () => {
        shedder?.close();
        return reaper.stop();
      },
    },
  ];
  if (rateLimiting !== undefined) cleanup.push({ name: 'redis', run: () => rateLimiting.close() });
  cleanup.push({
    name: 'postgres',
    run: async () => {
      await db.close();
      await embedded?.close();
    },
  });
  const tracing = activeTracing();
  if (tracing !== undefined)
    cleanup.push({ name: 'tracing', run: () => tracing.shutdown(TRACING_FLUSH_MS), timeoutMs: TRACING_FLUSH_MS + 500 });
  if (metricsListener !== undefined) cleanup.push({ name: 'metrics', run: () => metricsListener.close() });
  createLifecycle({
    server,
    gate,
    delayMs: config.shutdown.delayMs,
    drainTimeoutMs: config.shutdown.drainTimeoutMs,
    cleanup,
    logger,
    onShutdownStart: () => metrics.lifecycle.shutdownStarted(),
    onShutdownEnd: (report) => metrics.lifecycle.drainSeconds.set(report.drainMs / 1000),
  });

  server.listen(config.port);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  started = true;
  const port = (server.address() as AddressInfo).port;
  logger.info(
    {
      port,
      // Where /metrics is served: the metrics listener's port and address, or the public port.
      metricsPort: metricsListener?.port ?? port,
      metricsAddress: metricsListener?.address ?? 'public',
      mode: config.mode,
      rateLimit: config.rateLimit.enabled ? config.rateLimit.backend : 'off',
      tracing: tracing === undefined ? 'off' : config.tracing.protocol,
    },
    'listening',
  );
  return true;
}

main().catch((err: unknown) => {
  process.stderr.write(`rampart: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
