/** The Redis store's Lua scripts (lua/), each with its KEYS / ARGV / reply header. */
export { DECIDE_SCRIPT } from './lua/decide';
export { ADJUST_SCRIPT, RELEASE_SCRIPT, SETTLE_SCRIPT } from './lua/settle';
export { FLEET_SCRIPT } from './lua/fleet';
export { PERIOD_END_LUA } from './lua/shared';
