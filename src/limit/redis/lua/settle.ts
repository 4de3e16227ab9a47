import { COUNTER_LUA, PERIOD_END_LUA, PRELUDE_LUA, SORTED_SET_LUA } from './shared';

/**
 * Settles the checks of one hash slot after a decision across slots (see across-slots.ts): gives
 * back what an earlier step admitted when a later one denied, or only reads the checks a denial
 * left unvisited. Same clock, same arithmetic as the decide script.
 */
export const SETTLE_SCRIPT = `
-- rampart settle: give back one admitted step of a decision across slots, or only read.
--
-- KEYS  the key of every check, each followed by its override's key when its kind has
--       OVERRIDABLE (on Cluster: one slot)
-- ARGV  at: the admission time (µs) of the step being given back, or -1 to only read; then per
--       check 5 values: kind, a, b, cost (as the decide script's shapes), lease id ('' but
--       for CONCURRENCY)
-- reply per check: remaining, reset_us, retry_us (0 when its cost would be admitted now)
${PRELUDE_LUA}${PERIOD_END_LUA}${SORTED_SET_LUA}${COUNTER_LUA}
local at = tonumber(ARGV[1])
local giving_back = at >= 0

-- Moves the TAT back by interval x cost (a TAT in the past is a full bucket).
local function settle_token_bucket(key, interval, burst, cost)
  local tat = tonumber(call('GET', key)) or now
  if giving_back then
    tat = tat - interval * cost
    if tat <= now then call('DEL', key) else call('SET', key, tat, 'PX', ceil((tat - now) / 1000)) end
  end
  if tat < now then tat = now end
  local wait = tat + interval * cost - interval * burst - now
  if wait < 0 then wait = 0 end
  return floor((now + interval * burst - tat) / interval), tat - now, wait
end

-- Removes \`cost\` admissions made at \`at\`: exactly the ones the step added, or others of the
-- same instant, which are the same to the window.
local function settle_sliding_window(key, window, limit, cost)
  call('ZREMRANGEBYSCORE', key, '-inf', fmt('%d', now - window))
  if giving_back then
    local t = fmt('%d', at)
    local mine = call('ZRANGEBYSCORE', key, t, t, 'LIMIT', 0, cost)
    if #mine > 0 then call('ZREM', key, unpack(mine)) end
  end
  local count = call('ZCARD', key)
  local wait = 0
  if count + cost > limit then wait = window_wait(key, count, cost, limit, window) end
  return limit - count, last_end(key, window), wait
end

-- Takes \`cost\` off the count of the window holding \`at\` (this one or the previous).
local function settle_counter(key, window, limit, cost)
  local k, cur, prev = counter_state(key, window)
  if giving_back then
    local ka = floor(at / window)
    if ka == k then
      cur = cur - cost
      if cur < 0 then cur = 0 end
      counter_write(key, window, k, cur, prev)
    elseif ka == k - 1 then
      prev = prev - cost
      if prev < 0 then prev = 0 end
      counter_write(key, window, k, cur, prev)
    end
  end
  local est = counter_estimate(window, k, cur, prev)
  local wait = 0
  if est + cost > limit then wait = counter_wait(window, k, cur, prev, limit, cost) end
  return floor(limit - est), counter_reset(window, k, cur, prev), wait
end

-- Takes \`cost\` off the count when \`at\` is in the current period (a new period starts from 0).
local function settle_quota(key, period, limit, cost)
  local e = period_end(now, period)
  local count = tonumber(call('GET', key)) or 0
  if giving_back and period_end(at, period) == e then
    count = count - cost
    if count <= 0 then call('DEL', key) else call('SET', key, count, 'KEEPTTL') end
    if count < 0 then count = 0 end
  end
  local wait = 0
  if count + cost > limit then wait = e - now end
  return limit - count, e - now, wait
end

-- Removes the lease's members.
local function settle_concurrency(key, _, limit, cost, lease)
  if giving_back then
    for j = 1, cost do call('ZREM', key, lease .. '#' .. j) end
  end
  call('ZREMRANGEBYSCORE', key, '-inf', now_s)
  local count = call('ZCARD', key)
  local wait = 0
  if count + cost > limit then wait = lease_wait(key, count, cost, limit) end
  return limit - count, last_end(key, 0), wait
end

local SETTLE = { [TOKEN_BUCKET] = settle_token_bucket, [SLIDING_WINDOW] = settle_sliding_window, [QUOTA] = settle_quota, [CONCURRENCY] = settle_concurrency, [SLIDING_WINDOW_COUNTER] = settle_counter }

local reply = {}
local next_key = 1
for i = 1, (#ARGV - 1) / 5 do
  local key = KEYS[next_key]
  next_key = next_key + 1
  local o = 2 + 5 * (i - 1)
  local kind, a, b, cost = tonumber(ARGV[o]), tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])
  if kind >= OVERRIDABLE then
    kind = kind - OVERRIDABLE
    a, b = own_numbers(KEYS[next_key], a, b)
    next_key = next_key + 1
  end
  reply[3 * i - 2], reply[3 * i - 1], reply[3 * i] = SETTLE[kind](key, a, b, cost, ARGV[o + 4])
end
return reply
`;

/**
 * Gives back the leases of finished requests, many in one call (the releases of one event-loop
 * turn, per hash slot on Cluster).
 */
export const RELEASE_SCRIPT = `
-- rampart release: give back the leases of finished requests.
--
-- KEYS  the concurrency key of each lease (repeated for several leases of one key)
-- ARGV  per key 2 values: lease id, cost (its members are "<lease id>#1..cost")
-- reply the number of members removed
local removed = 0
for i = 1, #KEYS do
  local lease = ARGV[2 * i - 1]
  for j = 1, tonumber(ARGV[2 * i]) do
    removed = removed + redis.call('ZREM', KEYS[i], lease .. '#' .. j)
  end
end
return removed
`;

/**
 * Settles one admitted check to its real cost (reserve, then settle): a refund or a charge of
 * the difference, atomically, never refused. Same arithmetic as the memory store's `adjust`.
 */
export const ADJUST_SCRIPT = `
-- rampart adjust: settle one admitted check to the cost its request really had.
--
-- KEYS  the check's key, then its override's key when kind has OVERRIDABLE (one slot)
-- ARGV  kind, a, b (as the decide script's), delta (a charge; a refund when negative), at (the
--       admission's time, µs: a sliding window's refund removes what that admission added)
-- reply what the check has left now (below 0: in debt)
${PRELUDE_LUA}${PERIOD_END_LUA}${SORTED_SET_LUA}${COUNTER_LUA}
local key, kind, a, b = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local delta, at = tonumber(ARGV[4]), tonumber(ARGV[5])
if kind >= OVERRIDABLE then
  kind = kind - OVERRIDABLE
  a, b = own_numbers(KEYS[2], a, b)
end

-- TOKEN_BUCKET: the TAT moves by interval x delta; a TAT in the past is a full bucket (a refund
-- stops there), one past now + burst a debt (a charge is never refused).
if kind == TOKEN_BUCKET then
  local tat = tonumber(call('GET', key)) or now
  if tat < now then tat = now end
  tat = tat + a * delta
  if tat <= now then
    call('DEL', key)
    return b
  end
  call('SET', key, tat, 'PX', ceil((tat - now) / 1000))
  return floor((now + a * b - tat) / a)
end

-- SLIDING_WINDOW: a refund removes members of the admission (same instant, same to the window;
-- none once it left the window); a charge adds members now.
if kind == SLIDING_WINDOW then
  call('ZREMRANGEBYSCORE', key, '-inf', fmt('%d', now - a))
  if delta < 0 then
    local t = fmt('%d', at)
    local mine = call('ZRANGEBYSCORE', key, t, t, 'LIMIT', 0, -delta)
    if #mine > 0 then call('ZREM', key, unpack(mine)) end
  else
    local count = call('ZCARD', key)
    for j = 1, delta do call('ZADD', key, now_s, now_s .. ':+' .. (count + j)) end
    call('PEXPIRE', key, ceil(a / 1000))
  end
  return b - call('ZCARD', key)
end

-- SLIDING_WINDOW_COUNTER: a charge counts in this window; a refund in the admission's window
-- (this one or the previous), never below 0.
if kind == SLIDING_WINDOW_COUNTER then
  local k, cur, prev = counter_state(key, a)
  if delta > 0 then
    cur = cur + delta
  else
    local ka = floor(at / a)
    if ka == k then
      cur = cur + delta
      if cur < 0 then cur = 0 end
    elseif ka == k - 1 then
      prev = prev + delta
      if prev < 0 then prev = 0 end
    end
  end
  if cur > COUNTER_MAX then cur = COUNTER_MAX end
  counter_write(key, a, k, cur, prev)
  return floor(b - counter_estimate(a, k, cur, prev))
end

-- QUOTA: a charge counts in the current period; a refund only in the admission's, never below 0.
if kind == QUOTA then
  local e = period_end(now, a)
  local count = tonumber(call('GET', key)) or 0
  if delta > 0 then
    count = call('INCRBY', key, delta)
    if count == delta then call('PEXPIREAT', key, e / 1000 - 1) end
  elseif period_end(at, a) == e then
    count = count + delta
    if count <= 0 then
      count = 0
      call('DEL', key)
    else
      call('SET', key, count, 'KEEPTTL')
    end
  end
  return b - count
end
return redis.error_reply('ERR rampart adjust: a concurrency check has no cost to settle')
`;
