import { COUNTER_MAX, COUNTER_WINDOWS } from '../../window-counter';
import { BLOCKED, BLOCKED_REMAINING, KIND, OVERRIDABLE, WITH_PENALTY } from '../wire';

/**
 * Lua shared by the scripts, each fragment a `local` definition pasted at the top of a script.
 * The numbers that the wire format and the scripts must agree on come from wire.ts.
 */

/** The names of the numbers both sides agree on, and the script's clock (Redis `TIME`, µs). */
export const PRELUDE_LUA = `
-- Numbers passed to redis.call are written with 17 significant digits, so the µs integers
-- (below 2^53) reach Redis exactly; only string concatenation would round them.
local call, tonumber, floor, ceil, fmt = redis.call, tonumber, math.floor, math.ceil, string.format
local TOKEN_BUCKET, SLIDING_WINDOW, QUOTA, CONCURRENCY = ${KIND.token_bucket}, ${KIND.sliding_window}, ${KIND.quota}, ${KIND.concurrency}
local SLIDING_WINDOW_COUNTER = ${KIND.sliding_window_counter}
local WITH_PENALTY, OVERRIDABLE, BLOCKED, BLOCKED_REMAINING = ${WITH_PENALTY}, ${OVERRIDABLE}, ${BLOCKED}, ${BLOCKED_REMAINING}
local time = call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now_s = fmt('%d', now)
`;

/**
 * `period_end(t, period)`: when the quota period holding `t` (µs) ends: the next multiple of
 * `period`, or for `period` 0 the first instant of the next UTC month (civil-from-days and back,
 * on whole days). Same as `quotaPeriodEnd` (algorithms.ts).
 */
export const PERIOD_END_LUA = `
local DAY = 86400000000
local function period_end(t, period)
  if period > 0 then return (math.floor(t / period) + 1) * period end
  local fl = math.floor
  local z = fl(t / DAY) + 719468
  local era = fl(z / 146097)
  local doe = z - era * 146097
  local yoe = fl((doe - fl(doe / 1460) + fl(doe / 36524) - fl(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + fl(yoe / 4) - fl(yoe / 100))
  local mp = fl((5 * doy + 2) / 153)
  local m = mp + 3
  if mp >= 10 then m = mp - 9 end
  if m <= 2 then y = y + 1 end
  -- the next month's first day, back to days since the epoch
  m = m + 1
  if m > 12 then m = 1; y = y + 1 end
  if m <= 2 then y = y - 1 end
  era = fl(y / 400)
  yoe = y - era * 400
  mp = m - 3
  if m <= 2 then mp = m + 9 end
  doe = yoe * 365 + fl(yoe / 4) - fl(yoe / 100) + fl((153 * mp + 2) / 5)
  return (era * 146097 + doe - 719468) * DAY
end
`;

/**
 * The waits and resets of the sorted sets (sliding window: admission times; concurrency: lease
 * ends), and an override's numbers. Needs {@link PRELUDE_LUA}.
 */
export const SORTED_SET_LUA = `
-- The score at rank \`rank\` of the sorted set \`key\` (-1: the newest), nil when there is none.
local function score_at(key, rank)
  return tonumber(call('ZRANGE', key, rank, rank, 'WITHSCORES')[2])
end

-- A full window's wait for \`cost\` more: until the admission that frees room leaves the window
-- (a cost above the limit never passes: a whole window).
local function window_wait(key, count, cost, limit, window)
  local oldest = score_at(key, count + cost - limit - 1)
  if oldest then return oldest + window - now end
  return window
end

-- A full concurrency limit's wait for \`cost\` more: until the lease that frees room ends, at
-- most 1 s (a request usually finishes first), at least 1 µs.
local function lease_wait(key, count, cost, limit)
  local wait = 1000000
  local frees = score_at(key, count + cost - limit - 1)
  if frees and frees - now < wait then wait = frees - now end
  if wait < 1 then wait = 1 end
  return wait
end

-- Until the newest member's score plus \`plus\` (the window; 0 for leases), never below 0.
local function last_end(key, plus)
  local last = score_at(key, -1)
  if not last then return 0 end
  local left = last + plus - now
  if left < 0 then return 0 end
  return left
end

-- An identity's own numbers, "<a> <b>" at its override key, else \`a\`, \`b\` as given.
local function own_numbers(okey, a, b)
  local ov = call('GET', okey)
  if ov then
    local oa, ob = string.match(ov, '^(%d+) (%d+)$')
    if oa then return tonumber(oa), tonumber(ob) end
  end
  return a, b
end
`;

/**
 * The sliding window counter's state and arithmetic, as window-counter.ts has them (counterState,
 * counterEstimate, counterWait), windows aligned to multiples of their length since the Unix
 * epoch. The state is one integer, so Redis keeps it inside the key's object (no string
 * allocated): the window's index modulo {@link COUNTER_WINDOWS}, its count and the previous
 * window's (each held at {@link COUNTER_MAX}), packed as ((k mod 16) x 2^24 + count) x 2^24 +
 * previous (below 2^52) and stored negated, so that no other algorithm's integer (a TAT, a quota's
 * count: never negative) is ever read as a counter's, nor a counter's as theirs. Needs {@link PRELUDE_LUA}.
 */
export const COUNTER_LUA = `
local COUNTER_BASE, COUNTER_MAX, COUNTER_WINDOWS = ${COUNTER_MAX + 1}, ${COUNTER_MAX}, ${COUNTER_WINDOWS}
-- The window holding now, its count and the previous window's (0 when the state is older: a
-- state lives until the end of the window after its own, so only its last two indexes are met).
local function counter_state(key, window)
  local k = floor(now / window)
  local v = tonumber(call('GET', key))
  if v and v < 0 then
    v = -v
    local prev = v % COUNTER_BASE
    v = floor(v / COUNTER_BASE)
    local cur = v % COUNTER_BASE
    local sk = floor(v / COUNTER_BASE)
    if sk == k % COUNTER_WINDOWS then return k, cur, prev end
    if sk == (k - 1) % COUNTER_WINDOWS then return k, 0, cur end
  end
  return k, 0, 0
end
-- The sliding window's count: the previous window weighted by the part still covered, plus this one's.
local function counter_estimate(window, k, cur, prev)
  return prev * (window - (now - k * window)) / window + cur
end
-- Until \`cost\` more fits (at least 1 µs): later in this window, or in the next; a whole window
-- for a cost above the limit.
local function counter_wait(window, k, cur, prev, limit, cost)
  if cost > limit then return window end
  local start = k * window
  local room = limit - cur - cost
  local wait
  if room >= 0 and prev > 0 then
    wait = ceil(window - room * window / prev) - (now - start)
  else
    local nxt = 0
    if cur > 0 then nxt = ceil(window - (limit - cost) * window / cur) end
    if nxt < 0 then nxt = 0 end
    wait = start + window + nxt - now
  end
  if wait < 1 then wait = 1 end
  return wait
end
-- Until the estimate is 0 again.
local function counter_reset(window, k, cur, prev)
  if cur > 0 then return (k + 2) * window - now end
  if prev > 0 then return (k + 1) * window - now end
  return 0
end
-- Writes the state, living until its count stops mattering (the end of the next window).
local function counter_write(key, window, k, cur, prev)
  if cur <= 0 and prev <= 0 then
    call('DEL', key)
  else
    if cur > COUNTER_MAX then cur = COUNTER_MAX end
    if prev > COUNTER_MAX then prev = COUNTER_MAX end
    call('SET', key, fmt('%d', -(((k % COUNTER_WINDOWS) * COUNTER_BASE + cur) * COUNTER_BASE + prev)), 'PX', ceil(((k + 2) * window - now) / 1000))
  end
end
`;
