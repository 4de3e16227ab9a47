import assert from 'node:assert/strict';
import { PROBE_SCRIPT, SCRIPT_COMMANDS } from '../../../../../src/limit/redis/lua/probe';
import { ADJUST_SCRIPT, DECIDE_SCRIPT, FLEET_SCRIPT, RELEASE_SCRIPT, SETTLE_SCRIPT } from '../../../../../src/limit/redis/scripts';

/** The Redis commands a Lua source calls (`call('X'`, `redis.call('X'`, `redis.pcall('X'`). */
const commandsOf = (lua: string): Set<string> =>
  new Set([...lua.matchAll(/call\('([A-Za-z]+)'/g)].map((m) => (m[1] as string).toUpperCase()));

describe('the access probe script', () => {
  it("runs exactly the commands the store's scripts run: none missing (a user it passes can decide), none more", () => {
    const used = new Set([
      ...commandsOf(DECIDE_SCRIPT),
      ...commandsOf(SETTLE_SCRIPT),
      ...commandsOf(RELEASE_SCRIPT),
      ...commandsOf(ADJUST_SCRIPT),
      ...commandsOf(FLEET_SCRIPT),
    ]);
    assert.ok(used.size >= 10, [...used].join(' '));
    assert.deepEqual([...Object.keys(SCRIPT_COMMANDS)].sort(), [...used].sort());
    const tried = new Set([...PROBE_SCRIPT.matchAll(/^try\('([A-Z]+)'/gm)].map((m) => m[1] as string));
    assert.deepEqual([...tried].sort(), [...used].sort());
  });

  it('touches only its own two keys', () => {
    for (const [command, args] of Object.entries(SCRIPT_COMMANDS)) {
      if (command === 'TIME') continue;
      assert.match(args, /^KEYS\[[12]\]/, command);
      assert.doesNotMatch(args, /ARGV/, command);
    }
  });
});
