import { isIP } from 'node:net';
import { z } from 'zod';
import { parseRedisUrl } from '../redis/redis-url';
import { CONFIG_DEFAULTS } from './defaults';

/** Where the process runs. `prod` turns on the fail-closed rules. */
export type Mode = 'dev' | 'prod';
/** pino's levels, plus `silent`. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** How spans are sent to the collector. */
export type OtlpProtocol = 'grpc' | 'http/protobuf' | 'http/json';
/** The samplers `OTEL_TRACES_SAMPLER` may name. */
export type TraceSampler =
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio';

/** Express's `trust proxy` setting: off/on, a hop count, or trusted addresses and subnets. */
export type TrustProxy = boolean | number | readonly string[];

/** The resolved, validated, frozen configuration of a rampart process. */
export interface Config {
  readonly mode: Mode;
  readonly port: number;
  readonly logLevel: LogLevel;
  readonly trustProxy: TrustProxy;
  readonly rateLimit: {
    readonly enabled: boolean;
    readonly backend: 'memory' | 'redis';
    readonly redisUrl: string | undefined;
    readonly defaultRps: number;
    readonly defaultBurst: number;
    readonly devFailOpen: boolean;
    readonly policiesFile: string | undefined;
  };
  readonly tracing: {
    readonly enabled: boolean;
    readonly endpoint: string | undefined;
    readonly serviceName: string;
    readonly protocol: OtlpProtocol;
    /** Parsed `OTEL_RESOURCE_ATTRIBUTES`. */
    readonly resourceAttributes: Readonly<Record<string, string>>;
    readonly sampler: TraceSampler;
    /** Ratio for the `*traceidratio` samplers, 0..1. */
    readonly samplerRatio: number;
  };
  /** Both URLs undefined: the sample API runs on an embedded Postgres. */
  readonly database: {
    readonly writeUrl: string | undefined;
    readonly readUrl: string | undefined;
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

/**
 * Thrown when the environment is invalid. `message` is one line naming the variable and the
 * fix; `variable` is the variable at fault.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
  }
}

type Env = Readonly<Record<string, string | undefined>>;

const bool = z.enum(['true', 'false']).transform((v) => v === 'true');
const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/)
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));
const positiveNumber = z
  .string()
  .regex(/^\d+(\.\d+)?$/)
  .transform(Number)
  .pipe(z.number().positive().finite());
const httpUrl = z.string().refine((v) => {
  const u = URL.canParse(v) ? new URL(v) : undefined;
  return u !== undefined && (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
});
const postgresUrl = z.string().refine((v) => {
  const u = URL.canParse(v) ? new URL(v) : undefined;
  return u !== undefined && (u.protocol === 'postgres:' || u.protocol === 'postgresql:') && u.hostname !== '';
});
const redisUrl = z.string().refine((v) => {
  try {
    parseRedisUrl(v);
    return true;
  } catch {
    return false;
  }
});
const TRUST_PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);
const trustProxy = z.string().transform((v, ctx): TrustProxy => {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (/^\d+$/.test(v)) return Number(v);
  const entries = v.split(',').map((s) => s.trim());
  for (const entry of entries) {
    const [addr = '', bits, ...more] = entry.split('/');
    const family = isIP(addr);
    const bitsOk =
      bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
    if (!(TRUST_PROXY_NAMES.has(entry) || (family !== 0 && bitsOk && more.length === 0))) {
      ctx.addIssue({ code: 'custom', message: entry });
      return z.NEVER;
    }
  }
  return Object.freeze(entries);
});

// OTEL_RESOURCE_ATTRIBUTES as the spec writes it: key=value pairs, comma-separated,
// percent-encoded. The SDK drops a malformed value silently; here it is refused.
const resourceAttributes = z.string().transform((v, ctx): Readonly<Record<string, string>> => {
  const out: Record<string, string> = {};
  for (const pair of v.split(',')) {
    const eq = pair.indexOf('=');
    const key = eq === -1 ? '' : pair.slice(0, eq).trim();
    let value: string;
    try {
      value = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      ctx.addIssue({ code: 'custom', message: 'bad percent-encoding' });
      return z.NEVER;
    }
    if (!/^[A-Za-z0-9._-]{1,255}$/.test(key) || value.length > 255 || key in out) {
      ctx.addIssue({ code: 'custom', message: 'bad pair' });
      return z.NEVER;
    }
    out[key] = value;
  }
  return Object.freeze(out);
});
const ratio = z
  .string()
  .regex(/^(0(\.\d+)?|1(\.0+)?)$/)
  .transform(Number);

interface Variable<T> {
  readonly schema: z.ZodType<T, string>;
  /** What a valid value looks like, for the error message. */
  readonly expected: string;
  /** Never echo the value (it may carry a password). */
  readonly secret?: boolean;
}

const VARIABLES = {
  MODE: { schema: z.enum(['dev', 'prod']), expected: '"dev" or "prod"' },
  PORT: { schema: int(0, 65535), expected: 'a TCP port, an integer from 0 to 65535' },
  LOG_LEVEL: {
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    expected: 'one of fatal, error, warn, info, debug, trace, silent',
  },
  RATE_LIMIT_ENABLED: { schema: bool, expected: '"true" or "false"' },
  RATE_LIMIT_BACKEND: { schema: z.enum(['memory', 'redis']), expected: '"memory" or "redis"' },
  REDIS_URL: {
    schema: redisUrl,
    expected: 'redis://host:port, rediss://host:port, redis+sentinel://h1:p,h2:p/<master> or redis+cluster://h1:p,h2:p',
    secret: true,
  },
  RATE_LIMIT_DEFAULT_RPS: { schema: positiveNumber, expected: 'a positive number of requests per second' },
  RATE_LIMIT_DEFAULT_BURST: { schema: int(1, 1_000_000_000), expected: 'a positive integer number of requests' },
  RATE_LIMIT_DEV_FAIL_OPEN: { schema: bool, expected: '"true" or "false"' },
  RATE_LIMIT_POLICIES_FILE: { schema: z.string().min(1), expected: 'a path to a JSON policies file' },
  TRUST_PROXY: {
    schema: trustProxy,
    expected: '"true", "false", a hop count, or a comma-separated list of IPs, CIDR subnets, loopback, linklocal, uniquelocal',
  },
  TRACING_ENABLED: { schema: bool, expected: '"true" or "false"' },
  OTEL_EXPORTER_OTLP_ENDPOINT: { schema: httpUrl, expected: 'an absolute http:// or https:// URL', secret: true },
  OTEL_SERVICE_NAME: { schema: z.string().min(1).max(256), expected: 'a non-empty service name' },
  OTEL_EXPORTER_OTLP_PROTOCOL: {
    schema: z.enum(['grpc', 'http/protobuf', 'http/json']),
    expected: '"grpc", "http/protobuf" or "http/json"',
  },
  OTEL_RESOURCE_ATTRIBUTES: {
    schema: resourceAttributes,
    expected: 'comma-separated key=value pairs (keys [A-Za-z0-9._-], values percent-encoded, at most 255 characters each)',
  },
  OTEL_TRACES_SAMPLER: {
    schema: z.enum(['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio']),
    expected: 'one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio',
  },
  OTEL_TRACES_SAMPLER_ARG: { schema: ratio, expected: 'a sampling ratio from 0 to 1' },
  DATABASE_URL: { schema: postgresUrl, expected: 'a postgres://user:pass@host:port/db URL', secret: true },
  DATABASE_WRITE_URL: { schema: postgresUrl, expected: 'a postgres://user:pass@host:port/db URL', secret: true },
  DATABASE_READ_URL: { schema: postgresUrl, expected: 'a postgres://user:pass@host:port/db URL', secret: true },
  SHUTDOWN_DELAY_MS: { schema: int(0, 3_600_000), expected: 'milliseconds, an integer from 0 to 3600000' },
  SHUTDOWN_DRAIN_TIMEOUT_MS: { schema: int(1, 3_600_000), expected: 'milliseconds, an integer from 1 to 3600000' },
  LOAD_SHED_ENABLED: { schema: bool, expected: '"true" or "false"' },
  LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: { schema: int(0, 60_000), expected: 'milliseconds, an integer from 0 (off) to 60000' },
  LOAD_SHED_MAX_IN_FLIGHT: { schema: int(0, 1_000_000), expected: 'a number of requests, an integer from 0 (off) to 1000000' },
} satisfies Record<string, Variable<unknown>>;

/** Every environment variable rampart reads. */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(VARIABLES));

type Name = keyof typeof VARIABLES;
type Parsed = { [K in Name]: z.output<(typeof VARIABLES)[K]['schema']> | undefined };

function describeDefault(name: Name): string {
  const d = (CONFIG_DEFAULTS as Record<string, unknown>)[name];
  return d === undefined ? 'unset it' : `unset it for the default (${String(d)})`;
}

function parseVariables(env: Env): Parsed {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(VARIABLES) as Name[]) {
    const raw = env[name];
    // An empty value (`REDIS_URL=` in an env file) means unset.
    if (raw === undefined || raw === '') continue;
    const spec: Variable<unknown> = VARIABLES[name];
    const result = spec.schema.safeParse(raw);
    if (!result.success) {
      const shown = spec.secret === true ? '' : `=${JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}...` : raw)}`;
      throw new ConfigError(
        name,
        `${name}${shown} is invalid: expected ${spec.expected}. Fix: set ${name} to a valid value or ${describeDefault(name)}.`,
      );
    }
    out[name] = result.data;
  }
  return out as Parsed;
}

function refuse(variable: string, message: string): never {
  throw new ConfigError(variable, message);
}

/**
 * Reads, validates and freezes the configuration from an environment (by default
 * `process.env`). Throws {@link ConfigError} on a malformed value or a broken production rule.
 */
export function loadConfig(env: Env = process.env): Config {
  const v = parseVariables(env);
  const d = CONFIG_DEFAULTS;
  const mode = v.MODE ?? d.MODE;
  const rateLimitEnabled = v.RATE_LIMIT_ENABLED ?? d.RATE_LIMIT_ENABLED;
  const backend = v.RATE_LIMIT_BACKEND ?? d.RATE_LIMIT_BACKEND;
  const tracingEnabled = v.TRACING_ENABLED ?? d.TRACING_ENABLED;
  const devFailOpen = v.RATE_LIMIT_DEV_FAIL_OPEN ?? d.RATE_LIMIT_DEV_FAIL_OPEN;
  const writeUrl = v.DATABASE_WRITE_URL ?? v.DATABASE_URL;
  if (v.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined) {
    const u = new URL(v.OTEL_EXPORTER_OTLP_ENDPOINT);
    if (u.username !== '' || u.password !== '' || u.search !== '' || u.hash !== '') {
      refuse('OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT must not carry credentials, a query or a fragment. Fix: use the bare collector URL (e.g. http://jaeger:4318) and put headers in OTEL_EXPORTER_OTLP_HEADERS.');
    }
  }

  if (backend === 'redis' && v.REDIS_URL === undefined) {
    refuse('REDIS_URL', 'REDIS_URL is required when RATE_LIMIT_BACKEND=redis. Fix: set REDIS_URL (e.g. redis://127.0.0.1:6379) or RATE_LIMIT_BACKEND=memory outside prod.');
  }
  if (v.DATABASE_READ_URL !== undefined && writeUrl === undefined) {
    refuse('DATABASE_READ_URL', 'DATABASE_READ_URL is set without a primary. Fix: set DATABASE_WRITE_URL or DATABASE_URL too.');
  }
  if (mode === 'prod') {
    if (rateLimitEnabled && backend !== 'redis') {
      refuse('RATE_LIMIT_BACKEND', `MODE=prod with RATE_LIMIT_ENABLED=true requires RATE_LIMIT_BACKEND=redis (got ${backend}). Fix: set RATE_LIMIT_BACKEND=redis and REDIS_URL.`);
    }
    if (tracingEnabled && v.OTEL_EXPORTER_OTLP_ENDPOINT === undefined) {
      refuse('OTEL_EXPORTER_OTLP_ENDPOINT', 'MODE=prod with TRACING_ENABLED=true requires OTEL_EXPORTER_OTLP_ENDPOINT. Fix: set it to the collector URL (e.g. http://jaeger:4318) or set TRACING_ENABLED=false.');
    }
    if (devFailOpen) {
      refuse('RATE_LIMIT_DEV_FAIL_OPEN', 'RATE_LIMIT_DEV_FAIL_OPEN=true is refused with MODE=prod. Fix: unset RATE_LIMIT_DEV_FAIL_OPEN; choose failMode per policy instead.');
    }
    if (writeUrl === undefined) {
      refuse('DATABASE_URL', 'MODE=prod requires a real database, not the embedded one. Fix: set DATABASE_URL (or DATABASE_WRITE_URL).');
    }
  }

  const config: Config = {
    mode,
    port: v.PORT ?? d.PORT,
    logLevel: v.LOG_LEVEL ?? d.LOG_LEVEL,
    trustProxy: v.TRUST_PROXY ?? d.TRUST_PROXY,
    rateLimit: Object.freeze({
      enabled: rateLimitEnabled,
      backend,
      redisUrl: v.REDIS_URL,
      defaultRps: v.RATE_LIMIT_DEFAULT_RPS ?? d.RATE_LIMIT_DEFAULT_RPS,
      defaultBurst: v.RATE_LIMIT_DEFAULT_BURST ?? d.RATE_LIMIT_DEFAULT_BURST,
      devFailOpen,
      policiesFile: v.RATE_LIMIT_POLICIES_FILE,
    }),
    tracing: Object.freeze({
      enabled: tracingEnabled,
      endpoint: v.OTEL_EXPORTER_OTLP_ENDPOINT,
      serviceName: v.OTEL_SERVICE_NAME ?? d.OTEL_SERVICE_NAME,
      protocol: v.OTEL_EXPORTER_OTLP_PROTOCOL ?? d.OTEL_EXPORTER_OTLP_PROTOCOL,
      resourceAttributes: v.OTEL_RESOURCE_ATTRIBUTES ?? Object.freeze({}),
      sampler: v.OTEL_TRACES_SAMPLER ?? d.OTEL_TRACES_SAMPLER,
      samplerRatio: v.OTEL_TRACES_SAMPLER_ARG ?? d.OTEL_TRACES_SAMPLER_ARG,
    }),
    database: Object.freeze({
      writeUrl,
      readUrl: v.DATABASE_READ_URL ?? writeUrl,
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
