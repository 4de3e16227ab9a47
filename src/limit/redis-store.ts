import type { Redis, Cluster } from 'ioredis';
import { DECIDE_SCRIPT } from './decide-script';
import type { Check, Decision, RateLimitStore } from './types';

/** Options of {@link createRedisStore}. */
export interface RedisStoreOptions {
  /** An ioredis client (standalone, Sentinel or Cluster). The store does not close it. */
  readonly client: Redis | Cluster;
}

const COMMAND = 'rampartDecide';

type DecideCommand = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

function parseReply(reply: unknown, n: number): Decision {
  if (!Array.isArray(reply) || reply.length !== 2 + 2 * n) {
    throw new Error(`unexpected reply from the rate limit script: ${JSON.stringify(reply)}`);
  }
  const remaining = new Array<number>(n);
  const resetUs = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    remaining[i] = Number(reply[2 + 2 * i]);
    resetUs[i] = Number(reply[3 + 2 * i]);
  }
  return { allowed: Number(reply[0]) === 1, retryAfterUs: Number(reply[1]), remaining, resetUs };
}

/**
 * The Redis store: one EVALSHA per decision (ioredis sends EVAL once per connection and again
 * only after NOSCRIPT, never on any other error), the clock from Redis `TIME`.
 */
export function createRedisStore(options: RedisStoreOptions): RateLimitStore {
  const { client } = options;
  if (typeof (client as unknown as Record<string, unknown>)[COMMAND] !== 'function') {
    client.defineCommand(COMMAND, { lua: DECIDE_SCRIPT });
  }
  const decide = (client as unknown as Record<string, DecideCommand>)[COMMAND] as DecideCommand;
  return {
    name: 'redis',
    async decide(checks: readonly Check[]): Promise<Decision> {
      const n = checks.length;
      const args = new Array<string | number>(5 * n);
      for (let i = 0; i < n; i++) {
        const c = checks[i] as Check;
        args[i] = c.key;
        const o = n + 4 * i;
        args[o] = c.kind;
        args[o + 1] = c.a;
        args[o + 2] = c.b;
        args[o + 3] = c.cost;
      }
      const reply = await decide.call(client, n, ...args);
      return parseReply(reply, n);
    },
    close() {
      return Promise.resolve();
    },
  };
}
