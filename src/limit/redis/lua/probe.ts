/**
 * Each command the store's scripts run, with the arguments of a harmless call of it on the
 * probe's own keys (KEYS[1] a string, KEYS[2] a sorted set, one slot). A test checks that this
 * list and the commands of decide.ts and settle.ts are the same.
 */
export const SCRIPT_COMMANDS: Readonly<Record<string, string>> = Object.freeze({
  TIME: '',
  // On no key yet (a permission is checked all the same): the SET below sets the key's only TTL.
  PEXPIREAT: 'KEYS[1], 9999999999999',
  SET: "KEYS[1], '1', 'PX', 10000",
  GET: 'KEYS[1]',
  INCR: 'KEYS[1]',
  INCRBY: 'KEYS[1], 1',
  DECRBY: 'KEYS[1], 1',
  PTTL: 'KEYS[1]',
  ZADD: "KEYS[2], 1, 'probe'",
  PEXPIRE: 'KEYS[2], 10000',
  ZCARD: 'KEYS[2]',
  ZRANGE: 'KEYS[2], 0, -1',
  ZRANGEBYSCORE: "KEYS[2], '-inf', '+inf'",
  ZREM: "KEYS[2], 'probe'",
  ZREMRANGEBYSCORE: "KEYS[2], '-inf', '+inf'",
  DEL: 'KEYS[1], KEYS[2]',
});

/**
 * The access probe: runs every command of the store's scripts once, on two keys of its own under
 * the limiter's prefix, each through `pcall`, and deletes the keys whatever was refused. Replies
 * 1, or the first refusal as `<COMMAND>: <the server's error>` (a command the user may not run,
 * a key outside its patterns). A key left by a refused DEL expires within 10 s.
 */
export const PROBE_SCRIPT = `
-- rampart probe: the commands and the key space the limiter's scripts need.
-- KEYS  a string key and a sorted-set key, the probe's own (one slot)
-- reply 1, or '<COMMAND>: <error>' for the first command refused
local refused
local function try(command, ...)
  if refused then return end
  local reply = redis.pcall(command, ...)
  if type(reply) == 'table' and reply.err then refused = command .. ': ' .. reply.err end
end
${Object.entries(SCRIPT_COMMANDS)
  .map(([command, args]) => `try('${command}'${args === '' ? '' : `, ${args}`})`)
  .join('\n')}
if refused then
  redis.pcall('PEXPIRE', KEYS[2], 10000)
  redis.pcall('DEL', KEYS[1], KEYS[2])
  return refused
end
return 1`;
