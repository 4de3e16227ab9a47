import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  certificateRefusal,
  ConfigError,
  createMemoryStore,
  createRateLimiter,
  closeRedisClient,
  createRedisClient,
  createRedisStore,
  defaultPolicies,
  loadPolicyFile,
  redisAccessProblem,
  redisClientAccess,
  type Config,
  type Metrics,
  type RateLimiter,
  type RateLimitStore,
} from '../index';
import { DEFAULT_SURFACES } from './app';
import { loginCredential } from './auth/username';
import { contentFingerprint, watchPoliciesFile, type PoliciesWatcher } from './policies-reload';

/** The sample API's rate limiting: limiter, store and the Redis client it may own. */
export interface RateLimiting {
  readonly limiter: RateLimiter;
  readonly store: RateLimitStore;
  /** The Redis client, when the backend is Redis (for the readiness check). */
  readonly redis: ReturnType<typeof createRedisClient> | undefined;
  /** Stops the reloads of the policies file (if watched), closes the limiter, the store and the Redis connection (if any). */
  close(): Promise<void>;
}

/** Options of {@link createRateLimiting}. */
export interface RateLimitingOptions {
  /**
   * Reload `RATE_LIMIT_POLICIES_FILE` on SIGHUP and when it changes (see policies-reload.ts),
   * counting each in `rampart_policy_reloads_total`. Default false.
   */
  readonly watchPolicies?: boolean;
}

/**
 * Builds the limiter the environment describes: memory or Redis store, the default policies
 * or the policies file, the file's surfaces or {@link DEFAULT_SURFACES}. Redis being down
 * does not stop this: decisions fail (and each policy's fail mode applies) until it is back.
 */
/**
 * Waits for the client's first connection to settle, at most `timeoutMs`: a certificate it
 * refused (a wrong REDIS_TLS_CA_FILE, a name the certificate does not give) is a
 * misconfiguration, returned as the {@link ConfigError} that names the variable; anything else
 * (ready, refused, unreachable: an outage the fail modes handle) returns undefined.
 */
export function certificateProblem(client: Redis | Cluster, timeoutMs: number): Promise<ConfigError | undefined> {
  return new Promise((resolve) => {
    const events: [string, (...args: unknown[]) => void][] = [];
    const timer = setTimeout(() => done(undefined), timeoutMs);
    const done = (result: ConfigError | undefined) => {
      clearTimeout(timer);
      for (const [event, fn] of events) client.off(event, fn);
      resolve(result);
    };
    const on = (event: string, fn: (...args: unknown[]) => void) => {
      events.push([event, fn]);
      client.on(event, fn);
    };
    if (client.status === 'ready') {
      done(undefined);
      return;
    }
    on('ready', () => done(undefined));
    on('error', (err) => done(certificateRefusal(err, 'Redis')));
    on('node error', (err, key) => done(certificateRefusal(err, typeof key === 'string' ? key : 'a cluster node')));
  });
}

/**
 * Once the client is ready (waited for at most `timeoutMs`; a Redis down or slow is the fail
 * modes' matter, not a refusal), whether its Redis user may do what the limiter's scripts do:
 * a permission the server refuses is a misconfiguration, returned as a {@link ConfigError} naming
 * REDIS_URL (whose user it is), the refusal and the fix.
 */
export async function permissionProblem(client: Redis | Cluster, timeoutMs: number): Promise<ConfigError | undefined> {
  const deadline = Date.now() + timeoutMs;
  if (client.status !== 'ready') {
    // Ready, or the first connection error (Redis down: no reason to hold the start), or the time.
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        client.off('ready', done);
        client.off('error', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      client.on('ready', done);
      client.on('error', done);
    });
    if ((client.status as string) !== 'ready') return undefined;
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), Math.max(1, deadline - Date.now()))));
  const refused = await Promise.race([redisAccessProblem(client), late]).finally(() => clearTimeout(timer));
  if (refused === undefined) return undefined;
  return new ConfigError(
    'REDIS_URL',
    `the Redis user of REDIS_URL may not run what the rate limiter runs (${refused}). Fix: grant that user the ACL in docs/security.md ("The Redis ACL the limiter needs"), or use a user that has it.`,
  );
}

export function createRateLimiting(config: Config, logger: Logger, metrics?: Metrics, options: RateLimitingOptions = {}): RateLimiting {
  const rl = config.rateLimit;
  const defaults = defaultPolicies(rl.defaultRps, rl.defaultBurst);
  const watched = options.watchPolicies === true ? rl.policiesFile : undefined;
  // Taken before the file is read: a change made while it is read is seen by the first poll.
  const loaded = watched === undefined ? '' : contentFingerprint(watched);
  const set = rl.policiesFile === undefined ? { policies: defaults, surfaces: undefined } : loadPolicyFile(rl.policiesFile, defaults);

  let redis: ReturnType<typeof createRedisClient> | undefined;
  let store: RateLimitStore;
  if (rl.backend === 'redis' && rl.redisUrl !== undefined) {
    let lastReport = 0;
    if (rl.redis.skipHostnameCheck)
      logger.warn(
        'REDIS_TLS_SKIP_HOSTNAME_CHECK=true: a Redis certificate is accepted whatever host it names (it must still chain to the CA); anyone holding a certificate from that CA can pose as Redis',
      );
    redis = createRedisClient(rl.redisUrl, {
      ...redisClientAccess(rl.redis),
      onError: (err) => {
        const now = Date.now();
        if (now - lastReport < 5_000) return;
        lastReport = now;
        logger.warn({ err: { message: err.message } }, 'redis connection error');
      },
    });
    store = createRedisStore({ client: redis });
  } else {
    store = createMemoryStore();
  }

  let limiter: RateLimiter;
  try {
    limiter = createRateLimiter({
      store,
      policies: set.policies,
      surfaces: set.surfaces ?? DEFAULT_SURFACES,
      devFailOpen: rl.devFailOpen,
      deadlineMs: rl.deadlineMs,
      // A login's bucket is the account it tries, named as the lookup names it.
      credential: (req) => loginCredential(req.body),
      ...(metrics === undefined ? {} : { observer: metrics.rateLimit }),
      onBackendError: (err) => logger.warn({ err: { message: err.message } }, 'rate limiter backend failed'),
      // The log line of shadow mode: which policies would have refused which route.
      onShadowLimited: (policies, req) =>
        logger.info({ policies, method: req.method, path: req.path }, 'rate limit: shadow policies would have refused'),
      // Once per kind: forwarding headers TRUST_PROXY did not read (counted on /metrics every time).
      onWarning: (w) => logger.warn({ code: w.code }, w.message),
      onSettleError: (err, policy) => logger.warn({ err: { message: err.message }, policy }, 'rate limit: a reservation was not settled'),
    });
  } catch (err) {
    // The policies file was checked when it was loaded: what remains is a bug of the app.
    redis?.disconnect();
    void store.close();
    throw err;
  }

  let watcher: PoliciesWatcher | undefined;
  if (watched !== undefined) {
    const reloads = metrics?.rateLimit.policyReloads;
    // Both results show from the start (0), so that a rate over them needs no absent series.
    reloads?.labels('success').inc(0);
    reloads?.labels('error').inc(0);
    watcher = watchPoliciesFile({
      path: watched,
      loaded,
      logger,
      apply: () => {
        const next = loadPolicyFile(watched, defaults);
        limiter.setPolicies(next.policies, next.surfaces ?? DEFAULT_SURFACES);
        return Object.keys(next.policies);
      },
      ...(reloads === undefined ? {} : { onResult: (result: 'success' | 'error') => reloads.labels(result).inc() }),
    });
  }

  return {
    limiter,
    store,
    redis,
    async close() {
      watcher?.close();
      await limiter.close();
      await store.close();
      if (redis !== undefined) {
        const answered = await closeRedisClient(redis);
        if (!answered) logger.warn('Redis did not answer QUIT (refused or timed out); connection dropped');
      }
    },
  };
}
