/**
 * The fleet's heartbeat: each instance of a limiter with `failMode: 'local'` policies says it is
 * alive, and learns how many are (its share of a policy's numbers while the store is down).
 */
export const FLEET_SCRIPT = `
-- rampart fleet: one instance's heartbeat; how many instances beat within the last ttl.
--
-- KEYS  the fleet's sorted set (member: an instance, score: its last beat, µs)
-- ARGV  the instance's id, ttl (ms)
-- reply the number of instances seen within ttl, this one included
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - ttl * 1000))
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])
`;
