/**
 * The Redis ACL of the README's security notes, as `ACL SETUSER` rules: the limiter's key
 * pattern, its script (and the commands the script runs), PING for readiness and INFO for the
 * client's ready check. Cluster adds the two CLUSTER subcommands the client reads the slot map with.
 */
export const LIMITER_ACL: readonly string[] = Object.freeze([
  'on',
  '~rl:*',
  '-@all',
  '+evalsha',
  '+eval',
  '+time',
  '+get',
  '+set',
  '+del',
  '+pexpire',
  '+pttl',
  '+incr',
  '+incrby',
  '+decrby',
  '+pexpireat',
  '+zadd',
  '+zcard',
  '+zrange',
  '+zrangebyscore',
  '+zrem',
  '+zremrangebyscore',
  '+ping',
  '+info',
]);
export const LIMITER_ACL_CLUSTER: readonly string[] = Object.freeze([...LIMITER_ACL, '+cluster|slots', '+cluster|info']);
