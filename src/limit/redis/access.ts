import { randomBytes } from 'node:crypto';
import { RATE_LIMITER_DEFAULTS } from '../options';
import { connectionOf, type RedisStoreClient } from './connection-of';
import { PROBE_SCRIPT } from './lua/probe';

/**
 * Whether the Redis user of `client` may do what the limiter's scripts do under `prefix`: a probe
 * script that runs each of their commands on two keys of its own
 * (`<prefix>:rampart-probe:{<random>}`) and deletes them, called twice (a client may send the
 * first call as EVAL and the second as EVALSHA; decisions need both). Resolves to what the server
 * refused (`NOPERM this user has no permissions to run the 'evalsha' command`; inside the script,
 * the command and its refusal: `NOPERM in the script at ZADD: …`, or a key outside the user's
 * patterns), and to undefined otherwise: allowed, or not answered (an outage is the fail modes'
 * matter, not a misconfiguration).
 */
export async function redisAccessProblem(client: RedisStoreClient, options: { prefix?: string } = {}): Promise<string | undefined> {
  const prefix = options.prefix ?? RATE_LIMITER_DEFAULTS.prefix;
  const tag = randomBytes(6).toString('hex');
  const connection = connectionOf(client);
  // Not loaded up front: its first call is to ask for EVAL as a decision after NOSCRIPT would.
  const probe = connection.script('rampartProbe', PROBE_SCRIPT, false);
  const call = { numKeys: 2, args: [`${prefix}:rampart-probe:{${tag}}`, `${prefix}:rampart-probe:{${tag}}:z`] };
  try {
    for (let i = 0; i < 2; i++) {
      const reply = await probe(call);
      if (typeof reply === 'string' || Buffer.isBuffer(reply))
        return `NOPERM in the script at ${String(reply).replace(/\s+/g, ' ').trim()}`;
    }
    return undefined;
  } catch (err) {
    const message = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
    return connection.isReply(err) && /^NOPERM/i.test(message) ? message : undefined;
  } finally {
    connection.close();
  }
}
