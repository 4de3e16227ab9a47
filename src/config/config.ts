import { isIP } from 'node:net';
import { z } from 'zod';
import { isAddressOrRange } from '../internal/addresses';
import { parseRedisUrl } from '../redis/redis-url';
import { CONFIG_DEFAULTS } from './defaults';
import { loadTracingConfig, TRACING_VARIABLES, type TracingConfig } from './tracing-config';
import { bool, ConfigError, parseVariables, type Env, type Variable } from './variables';

/** Where the process runs. `prod` turns on the fail-closed rules. */
export type Mode = 'dev' | 'prod';
/** pino's levels, plus `silent`. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Express's `trust proxy` setting: off/on, a hop count, or trusted addresses and subnets. */
export type TrustProxy = boolean | number | readonly string[];

/** How to reach Redis beyond its URL: files are read when the client is made (redis-access.ts). */
export interface RedisAccess {
  readonly caFile: string | undefined;
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  readonly servername: string | undefined;
  readonly skipHostnameCheck: boolean;
  /** TLS to the sentinels; undefined: as the URL. */
  readonly sentinelTls: boolean | undefined;
  readonly sentinelUsername: string | undefined;
  readonly sentinelPassword: string | undefined;
}

/** The resolved, validated, frozen configuration of a rampart process. */
export interface Config {
  readonly mode: Mode;
  readonly port: number;
  /**
   * Where the sample API serves `/metrics`: on a listener of its own (`port`, bound to `host`),
   * or, `port` undefined, on the public {@link Config.port} beside the routes.
   */
  readonly metrics: {
    /** The metrics listener's port (0: any free port); undefined: `/metrics` is served on `port`. */
    readonly port: number | undefined;
    /** The metrics listener's bind address; undefined: every interface, as the public port. */
    readonly host: string | undefined;
  };
  readonly logLevel: LogLevel;
  readonly trustProxy: TrustProxy;
  readonly rateLimit: {
    readonly enabled: boolean;
    readonly backend: 'memory' | 'redis';
    readonly redisUrl: string | undefined;
    /** TLS and the sentinels' credentials (REDIS_TLS_*, REDIS_SENTINEL_*): see {@link RedisAccess}. */
    readonly redis: RedisAccess;
    readonly defaultRps: number;
    readonly defaultBurst: number;
    /** A decision not answered by the store within this is answered by the policy's fail mode. */
    readonly deadlineMs: number;
    readonly devFailOpen: boolean;
    readonly policiesFile: string | undefined;
  };
  /** What {@link loadTracingConfig} reads; the tracing preload reads only that. */
  readonly tracing: TracingConfig;
  /** Both URLs undefined: the sample API runs on an embedded Postgres. */
  readonly database: {
    readonly writeUrl: string | undefined;
    readonly readUrl: string | undefined;
    /** The preset of the pools' circuit breakers. */
    readonly breakerPreset: 'conservative' | 'balanced' | 'tolerant';
  };
  readonly shutdown: {
    readonly delayMs: number;
    readonly drainTimeoutMs: number;
  };
  /** Load shedding of the sample API; a limit of 0 turns that signal off. */
  readonly loadShed: {
    readonly enabled: boolean;
    readonly maxEventLoopDelayMs: number;
    readonly maxInFlight: number;
  };
}

const int = (min: number, max: number) => z.string().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(min).max(max));
const positiveNumber = z
  .string()
  .regex(/^\d+(\.\d+)?$/)
  .transform(Number)
  .pipe(z.number().positive().finite());
const postgresUrl = z.string().refine((v) => {
  const u = URL.canParse(v) ? new URL(v) : undefined;
  return u !== undefined && (u.protocol === 'postgres:' || u.protocol === 'postgresql:') && u.hostname !== '';
});
/** A path, a name: anything but empty (empty is unset). */
const path = z.string().min(1);
const redisUrl = z.string().refine((v) => {
  try {
    parseRedisUrl(v);
    return true;
  } catch {
    return false;
  }
});
// A host name (RFC 1123 labels) or an IP literal, without brackets or a port: what
// `server.listen(port, host)` binds. Dotted digits that are not an IPv4 address are refused.
const HOST_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOST_NAME = new RegExp(`^(?=.{1,253}$)${HOST_LABEL}(?:\\.${HOST_LABEL})*$`);
const bindHost = z.string().refine((v) => isIP(v) !== 0 || (HOST_NAME.test(v) && !/^[\d.]+$/.test(v)));
const TRUST_PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);
const trustProxy = z.string().transform((v, ctx): TrustProxy => {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (/^\d+$/.test(v)) return Number(v);
  const entries = v.split(',').map((s) => s.trim());
  for (const entry of entries) {
    if (!(TRUST_PROXY_NAMES.has(entry) || isAddressOrRange(entry))) {
      ctx.addIssue({ code: 'custom', message: entry });
      return z.NEVER;
    }
  }
  return Object.freeze(entries);
});

// The sample API's own variables; the tracing ones are TRACING_VARIABLES (tracing-config.ts).
const APP_VARIABLES = {
  MODE: { schema: z.enum(['dev', 'prod']), expected: '"dev" or "prod"' },
  PORT: { schema: int(0, 65535), expected: 'a TCP port, an integer from 0 to 65535' },
  METRICS_PORT: {
    schema: z.union([z.literal('public'), int(0, 65535)]),
    expected: 'the TCP port of a metrics listener of its own, an integer from 0 to 65535, or "public" to serve /metrics on PORT',
    unset: `${CONFIG_DEFAULTS.METRICS_PORT} with MODE=prod or METRICS_HOST set, else /metrics on PORT`,
  },
  METRICS_HOST: {
    schema: bindHost,
    expected: 'an IP address or host name of this machine to bind, without a port or brackets (e.g. 0.0.0.0, ::, 127.0.0.1)',
    unset: 'every interface',
  },
  LOG_LEVEL: {
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    expected: 'one of fatal, error, warn, info, debug, trace, silent',
  },
  RATE_LIMIT_ENABLED: { schema: bool, expected: '"true" or "false"' },
  RATE_LIMIT_BACKEND: { schema: z.enum(['memory', 'redis']), expected: '"memory" or "redis"' },
  REDIS_URL: {
    schema: redisUrl,
    expected:
      'redis://host:port, rediss://host:port, redis+sentinel://h1:p,h2:p/<master>, rediss+sentinel://…, redis+cluster://h1:p,h2:p or rediss+cluster://…',
    secret: true,
  },
  REDIS_TLS_CA_FILE: {
    schema: path,
    expected: "a path to a PEM file of the CA(s) that signed the Redis servers' certificates",
    unset: "Node's own CAs",
  },
  REDIS_TLS_CERT_FILE: { schema: path, expected: 'a path to a PEM client certificate (mutual TLS)', unset: 'no client certificate' },
  REDIS_TLS_KEY_FILE: { schema: path, expected: 'a path to the PEM private key of REDIS_TLS_CERT_FILE', unset: 'no client certificate' },
  REDIS_TLS_SERVERNAME: {
    schema: bindHost,
    expected: "the host name the Redis servers' certificates name (sent as SNI and verified)",
    unset: 'the host of each connection',
  },
  REDIS_TLS_SKIP_HOSTNAME_CHECK: { schema: bool, expected: '"true" or "false"' },
  REDIS_SENTINEL_TLS: {
    schema: bool,
    expected: '"true" or "false"',
    unset: 'as REDIS_URL: true for rediss+sentinel://, false for redis+sentinel://',
  },
  REDIS_SENTINEL_USERNAME: { schema: path, expected: "the sentinels' own ACL user", unset: 'none' },
  REDIS_SENTINEL_PASSWORD: { schema: path, expected: "the sentinels' own password", secret: true, unset: 'none' },
  RATE_LIMIT_DEFAULT_RPS: { schema: positiveNumber, expected: 'a positive number of requests per second' },
  RATE_LIMIT_DEFAULT_BURST: { schema: int(1, 1_000_000_000), expected: 'a positive integer number of requests' },
  RATE_LIMIT_DEADLINE_MS: { schema: int(1, 60_000), expected: 'milliseconds, an integer from 1 to 60000' },
  RATE_LIMIT_DEV_FAIL_OPEN: { schema: bool, expected: '"true" or "false"' },
  RATE_LIMIT_POLICIES_FILE: { schema: z.string().min(1), expected: 'a path to a JSON policies file' },
  TRUST_PROXY: {
    schema: trustProxy,
    expected: '"true", "false", a hop count, or a comma-separated list of IPs, CIDR subnets, loopback, linklocal, uniquelocal',
  },
  DATABASE_URL: { schema: postgresUrl, expected: 'a postgres://user:pass@host:port/db URL', secret: true },
  DATABASE_WRITE_URL: { schema: postgresUrl, expected: 'a postgres://user:pass@host:port/db URL', secret: true },
  DATABASE_READ_URL: { schema: postgresUrl, expected: 'a postgres://user:pass@host:port/db URL', secret: true },
  DB_BREAKER_PRESET: { schema: z.enum(['conservative', 'balanced', 'tolerant']), expected: '"conservative", "balanced" or "tolerant"' },
  SHUTDOWN_DELAY_MS: { schema: int(0, 3_600_000), expected: 'milliseconds, an integer from 0 to 3600000' },
  SHUTDOWN_DRAIN_TIMEOUT_MS: { schema: int(1, 3_600_000), expected: 'milliseconds, an integer from 1 to 3600000' },
  LOAD_SHED_ENABLED: { schema: bool, expected: '"true" or "false"' },
  LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: { schema: int(0, 60_000), expected: 'milliseconds, an integer from 0 (off) to 60000' },
  LOAD_SHED_MAX_IN_FLIGHT: { schema: int(0, 1_000_000), expected: 'a number of requests, an integer from 0 (off) to 1000000' },
} satisfies Record<string, Variable<unknown>>;

/** Every environment variable rampart reads. */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze([...Object.keys(APP_VARIABLES), ...Object.keys(TRACING_VARIABLES)]);

function problem(variable: string, message: string): ConfigError {
  return new ConfigError(variable, message);
}

/** Several broken rules as one refusal, on one line: named by the first, every one said in turn. */
function combined(problems: readonly ConfigError[]): ConfigError {
  const err = new ConfigError(
    (problems[0] as ConfigError).variable,
    `${problems.length} problems: ${problems.map((p, i) => `(${i + 1}) ${p.message}`).join(' ')}`,
  );
  return Object.assign(err, { variables: problems.map((p) => p.variable) });
}

/** The REDIS_TLS_* and REDIS_SENTINEL_* variables that REDIS_URL would ignore, or that need a partner. */
function redisAccessProblems(v: {
  REDIS_URL?: string | undefined;
  REDIS_TLS_CA_FILE?: string | undefined;
  REDIS_TLS_CERT_FILE?: string | undefined;
  REDIS_TLS_KEY_FILE?: string | undefined;
  REDIS_TLS_SERVERNAME?: string | undefined;
  REDIS_TLS_SKIP_HOSTNAME_CHECK?: boolean | undefined;
  REDIS_SENTINEL_TLS?: boolean | undefined;
  REDIS_SENTINEL_USERNAME?: string | undefined;
  REDIS_SENTINEL_PASSWORD?: string | undefined;
}): ConfigError[] {
  const found: ConfigError[] = [];
  const target = v.REDIS_URL === undefined ? undefined : parseRedisUrl(v.REDIS_URL);
  const scheme = v.REDIS_URL?.slice(0, v.REDIS_URL.indexOf('//')) ?? '(unset)';
  const sentinel = target?.kind === 'sentinel';
  const usesTls = target !== undefined && (target.tls || (sentinel && v.REDIS_SENTINEL_TLS === true));
  const tlsVariables = [
    ['REDIS_TLS_CA_FILE', v.REDIS_TLS_CA_FILE],
    ['REDIS_TLS_CERT_FILE', v.REDIS_TLS_CERT_FILE],
    ['REDIS_TLS_KEY_FILE', v.REDIS_TLS_KEY_FILE],
    ['REDIS_TLS_SERVERNAME', v.REDIS_TLS_SERVERNAME],
    ['REDIS_TLS_SKIP_HOSTNAME_CHECK', v.REDIS_TLS_SKIP_HOSTNAME_CHECK],
  ] as const;
  for (const [name, value] of tlsVariables) {
    if (value !== undefined && !usesTls)
      found.push(
        problem(
          name,
          `${name} is set but REDIS_URL (${scheme}//) makes no TLS connection, so nothing would use it. Fix: use rediss://, rediss+sentinel:// or rediss+cluster:// (or REDIS_SENTINEL_TLS=true), or unset ${name}.`,
        ),
      );
  }
  if ((v.REDIS_TLS_CERT_FILE === undefined) !== (v.REDIS_TLS_KEY_FILE === undefined)) {
    const [given, missing] =
      v.REDIS_TLS_CERT_FILE === undefined ? ['REDIS_TLS_KEY_FILE', 'REDIS_TLS_CERT_FILE'] : ['REDIS_TLS_CERT_FILE', 'REDIS_TLS_KEY_FILE'];
    found.push(
      problem(missing, `${given} is set without ${missing}: a client certificate needs both. Fix: set ${missing}, or unset ${given}.`),
    );
  }
  for (const [name, value] of [
    ['REDIS_SENTINEL_TLS', v.REDIS_SENTINEL_TLS],
    ['REDIS_SENTINEL_USERNAME', v.REDIS_SENTINEL_USERNAME],
    ['REDIS_SENTINEL_PASSWORD', v.REDIS_SENTINEL_PASSWORD],
  ] as const) {
    if (value !== undefined && !sentinel)
      found.push(
        problem(
          name,
          `${name} is set but REDIS_URL (${scheme}//) names no sentinels. Fix: use redis+sentinel:// or rediss+sentinel://, or unset ${name}.`,
        ),
      );
  }
  return found;
}

/**
 * Reads, validates and freezes the configuration from an environment (by default
 * `process.env`). Throws {@link ConfigError} on a malformed value or a broken production rule.
 * The `tracing` part is {@link loadTracingConfig}'s, rules included. The rate-limit backend is
 * `RATE_LIMIT_BACKEND` when set, else `redis` when `REDIS_URL` is set, else `memory`; an explicit
 * `RATE_LIMIT_BACKEND=memory` with a `REDIS_URL` is refused. Metrics get a listener of their own
 * on `METRICS_PORT` when it is a port; unset, on its default with `MODE=prod` or `METRICS_HOST`
 * set, else they are served on `PORT` (as with `METRICS_PORT=public`).
 */
export function loadConfig(env: Env = process.env): Config {
  const v = parseVariables(APP_VARIABLES, env);
  const tracing = loadTracingConfig(env);
  const d = CONFIG_DEFAULTS;
  const mode = v.MODE ?? d.MODE;
  const rateLimitEnabled = v.RATE_LIMIT_ENABLED ?? d.RATE_LIMIT_ENABLED;
  // A REDIS_URL is meant to be used: left unset, the backend follows it rather than ignoring it.
  const backend = v.RATE_LIMIT_BACKEND ?? (v.REDIS_URL === undefined ? d.RATE_LIMIT_BACKEND : 'redis');
  const devFailOpen = v.RATE_LIMIT_DEV_FAIL_OPEN ?? d.RATE_LIMIT_DEV_FAIL_OPEN;
  const writeUrl = v.DATABASE_WRITE_URL ?? v.DATABASE_URL;
  const port = v.PORT ?? d.PORT;
  // Anyone who reaches PORT would read /metrics there (shard addresses included): in prod they get
  // a listener of their own unless METRICS_PORT=public says otherwise. A METRICS_HOST is meant to
  // be used, so it asks for that listener in dev too.
  const metricsPort =
    v.METRICS_PORT === 'public'
      ? undefined
      : (v.METRICS_PORT ?? (mode === 'prod' || v.METRICS_HOST !== undefined ? d.METRICS_PORT : undefined));

  // Every broken rule is reported at once: one start tells the operator all there is to fix.
  const problems: ConfigError[] = [];
  if (backend === 'redis' && v.REDIS_URL === undefined) {
    problems.push(
      problem(
        'REDIS_URL',
        'REDIS_URL is required when RATE_LIMIT_BACKEND=redis. Fix: set REDIS_URL (e.g. redis://127.0.0.1:6379) or RATE_LIMIT_BACKEND=memory outside prod.',
      ),
    );
  }
  if (v.DATABASE_READ_URL !== undefined && writeUrl === undefined) {
    problems.push(
      problem('DATABASE_READ_URL', 'DATABASE_READ_URL is set without a primary. Fix: set DATABASE_WRITE_URL or DATABASE_URL too.'),
    );
  }
  if (mode === 'prod') {
    if (rateLimitEnabled && backend !== 'redis') {
      problems.push(
        problem(
          'RATE_LIMIT_BACKEND',
          `MODE=prod with RATE_LIMIT_ENABLED=true requires RATE_LIMIT_BACKEND=redis (got ${backend}). Fix: set REDIS_URL and leave RATE_LIMIT_BACKEND unset (or set it to redis).`,
        ),
      );
    }
    if (tracing.enabled && tracing.endpoint === undefined) {
      problems.push(
        problem(
          'OTEL_EXPORTER_OTLP_ENDPOINT',
          'MODE=prod with TRACING_ENABLED=true requires OTEL_EXPORTER_OTLP_ENDPOINT. Fix: set it to the collector URL (e.g. http://jaeger:4318) or set TRACING_ENABLED=false.',
        ),
      );
    }
    if (devFailOpen) {
      problems.push(
        problem(
          'RATE_LIMIT_DEV_FAIL_OPEN',
          'RATE_LIMIT_DEV_FAIL_OPEN=true is refused with MODE=prod. Fix: unset RATE_LIMIT_DEV_FAIL_OPEN; choose failMode per policy instead.',
        ),
      );
    }
    if (writeUrl === undefined) {
      problems.push(
        problem('DATABASE_URL', 'MODE=prod requires a real database, not the embedded one. Fix: set DATABASE_URL (or DATABASE_WRITE_URL).'),
      );
    }
  }
  if (v.METRICS_PORT === 'public' && v.METRICS_HOST !== undefined) {
    problems.push(
      problem(
        'METRICS_HOST',
        'METRICS_HOST is set together with METRICS_PORT=public, which serves /metrics on PORT and would ignore it. Fix: unset METRICS_HOST, or set METRICS_PORT to a port of its own (e.g. 9464).',
      ),
    );
  }
  // Port 0 is any free port: two of them never collide.
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === port) {
    const which =
      v.METRICS_PORT === undefined
        ? `METRICS_PORT is unset, and its default (${metricsPort}, with ${mode === 'prod' ? 'MODE=prod' : 'METRICS_HOST set'}) is`
        : `METRICS_PORT=${metricsPort} is`;
    problems.push(
      problem(
        'METRICS_PORT',
        `${which} the public PORT=${port}: the metrics listener cannot share it. Fix: set METRICS_PORT to a port of its own (e.g. ${port === d.METRICS_PORT ? 9465 : d.METRICS_PORT}), or METRICS_PORT=public to serve /metrics on PORT.`,
      ),
    );
  }
  problems.push(...redisAccessProblems(v));
  // Checked in any mode, whether rate limiting is on or not: the two say opposite things, and
  // picking either would silently ignore the other.
  if (v.RATE_LIMIT_BACKEND === 'memory' && v.REDIS_URL !== undefined) {
    problems.push(
      problem(
        'RATE_LIMIT_BACKEND',
        'RATE_LIMIT_BACKEND=memory is set together with REDIS_URL, which the memory backend would ignore. Fix: unset RATE_LIMIT_BACKEND (REDIS_URL then selects redis) or set it to redis, or unset REDIS_URL to keep memory.',
      ),
    );
  }

  if (problems.length === 1) throw problems[0] as ConfigError;
  if (problems.length > 1) throw combined(problems);

  const config: Config = {
    mode,
    port,
    metrics: Object.freeze({ port: metricsPort, host: v.METRICS_HOST }),
    logLevel: v.LOG_LEVEL ?? d.LOG_LEVEL,
    trustProxy: v.TRUST_PROXY ?? d.TRUST_PROXY,
    rateLimit: Object.freeze({
      enabled: rateLimitEnabled,
      backend,
      redisUrl: v.REDIS_URL,
      redis: Object.freeze({
        caFile: v.REDIS_TLS_CA_FILE,
        certFile: v.REDIS_TLS_CERT_FILE,
        keyFile: v.REDIS_TLS_KEY_FILE,
        servername: v.REDIS_TLS_SERVERNAME,
        skipHostnameCheck: v.REDIS_TLS_SKIP_HOSTNAME_CHECK ?? d.REDIS_TLS_SKIP_HOSTNAME_CHECK,
        sentinelTls: v.REDIS_SENTINEL_TLS,
        sentinelUsername: v.REDIS_SENTINEL_USERNAME,
        sentinelPassword: v.REDIS_SENTINEL_PASSWORD,
      }),
      defaultRps: v.RATE_LIMIT_DEFAULT_RPS ?? d.RATE_LIMIT_DEFAULT_RPS,
      defaultBurst: v.RATE_LIMIT_DEFAULT_BURST ?? d.RATE_LIMIT_DEFAULT_BURST,
      deadlineMs: v.RATE_LIMIT_DEADLINE_MS ?? d.RATE_LIMIT_DEADLINE_MS,
      devFailOpen,
      policiesFile: v.RATE_LIMIT_POLICIES_FILE,
    }),
    tracing,
    database: Object.freeze({
      writeUrl,
      readUrl: v.DATABASE_READ_URL ?? writeUrl,
      breakerPreset: v.DB_BREAKER_PRESET ?? d.DB_BREAKER_PRESET,
    }),
    shutdown: Object.freeze({
      delayMs: v.SHUTDOWN_DELAY_MS ?? d.SHUTDOWN_DELAY_MS,
      drainTimeoutMs: v.SHUTDOWN_DRAIN_TIMEOUT_MS ?? d.SHUTDOWN_DRAIN_TIMEOUT_MS,
    }),
    loadShed: Object.freeze({
      enabled: v.LOAD_SHED_ENABLED ?? d.LOAD_SHED_ENABLED,
      maxEventLoopDelayMs: v.LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS ?? d.LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS,
      maxInFlight: v.LOAD_SHED_MAX_IN_FLIGHT ?? d.LOAD_SHED_MAX_IN_FLIGHT,
    }),
  };
  return Object.freeze(config);
}
