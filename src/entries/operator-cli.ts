// `rampart peek|reset|block|unblock --policy P --identity I [--seconds N] [--policies FILE]
// [--prefix rl]`: the operator's controls against REDIS_URL, read with the app's own variables
// (REDIS_TLS_*, REDIS_SENTINEL_*, RATE_LIMIT_DEFAULT_RPS/BURST, RATE_LIMIT_POLICIES_FILE, which
// --policies replaces), on the policies the app runs, the identity as the app knows it (an
// address, a username, a principal id). Exit 0 done; 1 refused (an unknown policy, a block
// without a penalty) or Redis did not answer; 2 usage or a variable the app would refuse.
import { ConfigError, defaultPolicies, loadConfig, loadPolicyFile, redisClientAccess, type Config } from '../config';
import { createRateLimiter, createRedisStore, RATE_LIMITER_DEFAULTS } from '../limit';
import { closeRedisClient, createRedisClient } from '../redis';
import { OptionsError } from '../internal/options';

export const OPERATOR_COMMANDS = ['peek', 'reset', 'block', 'unblock'] as const;
export const OPERATOR_USAGE =
  'usage: rampart peek|reset|block|unblock --policy NAME --identity VALUE [--seconds N (block)] [--policies FILE] [--prefix PREFIX]; REDIS_URL names the Redis';

/** How long the command waits for Redis before it says it did not answer. */
const READY_TIMEOUT_MS = 5_000;

/** `--name value` pairs; undefined for a malformed list. */
function flags(args: readonly string[]): Map<string, string> | undefined {
  const m = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i];
    const value = args[i + 1];
    if (name === undefined || !name.startsWith('--') || value === undefined) return undefined;
    m.set(name.slice(2), value);
  }
  return m;
}

export async function operatorMain(
  command: (typeof OPERATOR_COMMANDS)[number],
  args: readonly string[],
  out: (line: string) => void,
  err: (line: string) => void,
  /** The environment (default: the process's, read by src/config). */
  env?: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  const f = flags(args);
  const policy = f?.get('policy');
  const identity = f?.get('identity');
  const seconds = f?.get('seconds');
  const known = new Set(['policy', 'identity', 'seconds', 'policies', 'prefix']);
  if (
    f === undefined ||
    policy === undefined ||
    identity === undefined ||
    [...f.keys()].some((k) => !known.has(k)) ||
    (command === 'block') !== (seconds !== undefined)
  ) {
    err(OPERATOR_USAGE);
    return 2;
  }
  let config: Config;
  try {
    config = env === undefined ? loadConfig() : loadConfig(env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    err(`rampart: ${e.message}`);
    return 2;
  }
  const rl = config.rateLimit;
  const url = rl.redisUrl;
  if (url === undefined) {
    err(
      'rampart: REDIS_URL is not set. Fix: REDIS_URL=redis://host:6379 (or the redis+sentinel:// or redis+cluster:// form the app uses).',
    );
    return 2;
  }
  const defaults = defaultPolicies(rl.defaultRps, rl.defaultBurst);
  const file = f.get('policies') ?? rl.policiesFile;
  let policies;
  try {
    policies = file === undefined ? defaults : loadPolicyFile(file, defaults).policies;
  } catch (e) {
    err(`rampart: ${(e as Error).message}`);
    return 2;
  }
  const client = createRedisClient(url, { ...redisClientAccess(rl.redis), onError: () => undefined });
  const limiter = createRateLimiter({
    store: createRedisStore({ client }),
    policies,
    prefix: f.get('prefix') ?? RATE_LIMITER_DEFAULTS.prefix,
  });
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (client.status !== 'ready' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (client.status !== 'ready') {
      err(`rampart: Redis at REDIS_URL did not answer within ${READY_TIMEOUT_MS / 1000} s; nothing was done.`);
      return 1;
    }
    if (command === 'peek') out(JSON.stringify(await limiter.peek(policy, identity)));
    else if (command === 'reset') out(`reset: ${await limiter.reset(policy, identity)} (bucket emptied, penalty lifted)`);
    else if (command === 'unblock') out(`unblocked: ${await limiter.unblock(policy, identity)}`);
    else {
      const s = Number(seconds);
      out(`blocked: ${await limiter.block(policy, identity, s)} for ${s} s`);
    }
    return 0;
  } catch (e) {
    // An option error names its command already (`block: policy ... must be ...`); a store's does not.
    const message = (e as Error).message;
    err(e instanceof OptionsError ? `rampart: ${message}` : `rampart: ${command}: ${message}`);
    return 1;
  } finally {
    await limiter.close();
    await closeRedisClient(client);
  }
}
