import { COUNTER_LUA, PERIOD_END_LUA, PRELUDE_LUA, SORTED_SET_LUA } from './shared';

/**
 * The one Lua script behind every Redis decision; its header says its KEYS, ARGV and reply
 * (wire.ts writes and reads them). Each algorithm is a `read_*` (what the bucket holds, whether
 * the request fits) and a `commit_*` (the write once every check of the request fits).
 */
export const DECIDE_SCRIPT = `
-- rampart decide: one or more decisions (the store coalesces those of one event-loop turn),
-- each one request's checks (one per policy) decided together, all-or-nothing: a denial by one
-- check consumes nothing from the others. Time is Redis TIME (µs), read once per call.
--
-- KEYS  the key of every check, in order, each followed by its penalty's key when its shape has
--       WITH_PENALTY, then its override's key when it has OVERRIDABLE (on Cluster: one slot)
-- ARGV  D (decisions), S (distinct check shapes), then S shapes: kind, a, b, cost, and with
--       WITH_PENALTY 3 more: denials, window (µs), block (µs); then L and L lease ids (one per
--       concurrency check, in the call's order); then per decision: the 1-based index of its
--       one check's shape, or -n and the shape index of each of its n checks
-- reply the clock (µs: the admission time of all it admits), then per decision: retry_us (0
--       exactly when admitted; else the wait until every denying check would admit it), and per
--       check: remaining (after the request; before it when denied; BLOCKED_REMAINING when its penalty's
--       block refused it) and reset_us (until the check is full again; a block's rest)
--
-- a, b per kind: TOKEN_BUCKET µs per token, burst; SLIDING_WINDOW window (µs), limit;
-- QUOTA period (µs; 0: the UTC calendar month), limit; CONCURRENCY lease (µs), limit;
-- SLIDING_WINDOW_COUNTER window (µs), limit.
-- override key: "<a> <b>", the identity's own numbers. penalty key: the strikes (refusals by
-- the check; PX the window from the first), or BLOCKED while blocked (PX the block).
${PRELUDE_LUA}${PERIOD_END_LUA}${SORTED_SET_LUA}${COUNTER_LUA}
-- Per check of the decision being made (entries 1..n are written before they are read).
local keys, pkeys, okeys, kinds, as, bs, costs, leases = {}, {}, {}, {}, {}, {}, {}, {}
local state, rem_before, reset_before, rem_after, reset_after, blocked, counted = {}, {}, {}, {}, {}, {}, {}
local cur_of, prev_of = {}, {}
-- reset_before of a set that is not empty, read only for a denial's reply (last_end)
local LATER = -1

-- TOKEN_BUCKET, GCRA: one integer per key, the theoretical arrival time (TAT, µs); PX = until
-- the bucket is full again.
local function read_token_bucket(i, key, interval, burst, cost)
  local tat = tonumber(call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  rem_before[i] = floor((now + interval * burst - tat) / interval)
  reset_before[i] = tat - now
  local allow_at = new_tat - interval * burst
  if now < allow_at then return allow_at - now end
  state[i] = new_tat
  rem_after[i] = floor((now + interval * burst - new_tat) / interval)
  reset_after[i] = new_tat - now
  return 0
end
local function commit_token_bucket(i, key)
  call('SET', key, state[i], 'PX', ceil((state[i] - now) / 1000))
end

-- SLIDING_WINDOW, exact: a sorted set of admission times (µs), member "<time>:<n>".
local function read_sliding_window(i, key, window, limit, cost)
  call('ZREMRANGEBYSCORE', key, '-inf', fmt('%d', now - window))
  local count = call('ZCARD', key)
  rem_before[i] = limit - count
  reset_before[i] = count > 0 and LATER or 0
  if count + cost > limit then return window_wait(key, count, cost, limit, window) end
  state[i] = count
  rem_after[i] = limit - count - cost
  reset_after[i] = window
  return 0
end
local function commit_sliding_window(i, key)
  for j = 1, costs[i] do call('ZADD', key, now_s, now_s .. ':' .. (state[i] + j)) end
  call('PEXPIRE', key, ceil(as[i] / 1000))
end

-- SLIDING_WINDOW_COUNTER: one integer per key (COUNTER_LUA), PX = until the end of the next
-- window. state: the window's index; its count and the previous one's in cur_of, prev_of.
local function read_counter(i, key, window, limit, cost)
  local k, cur, prev = counter_state(key, window)
  local est = counter_estimate(window, k, cur, prev)
  state[i], cur_of[i], prev_of[i] = k, cur, prev
  rem_before[i] = floor(limit - est)
  reset_before[i] = counter_reset(window, k, cur, prev)
  if est + cost > limit then return counter_wait(window, k, cur, prev, limit, cost) end
  rem_after[i] = floor(limit - est - cost)
  reset_after[i] = (k + 2) * window - now
  return 0
end
local function commit_counter(i, key)
  counter_write(key, as[i], state[i], cur_of[i] + costs[i], prev_of[i])
end

-- CONCURRENCY: a sorted set of leases, member "<lease id>#<j>" (j = 1..cost), score = when the
-- lease ends (µs). Ended leases are dropped when the set is full (below the limit they change
-- no decision); the key lives until its latest lease ends.
local function read_concurrency(i, key, lease_us, limit, cost)
  local count = call('ZCARD', key)
  if count + cost > limit then count = count - call('ZREMRANGEBYSCORE', key, '-inf', now_s) end
  state[i] = count
  rem_before[i] = limit - count
  reset_before[i] = count > 0 and LATER or 0
  if count + cost > limit then return lease_wait(key, count, cost, limit) end
  rem_after[i] = limit - count - cost
  reset_after[i] = lease_us
  return 0
end
local function commit_concurrency(i, key)
  local ends_at = fmt('%d', now + as[i])
  for j = 1, costs[i] do call('ZADD', key, ends_at, leases[i] .. '#' .. j) end
  -- a new set has no TTL (GT would not set one); else only ever extend it
  if state[i] == 0 then call('PEXPIRE', key, ceil(as[i] / 1000)) else call('PEXPIRE', key, ceil(as[i] / 1000), 'GT') end
end

-- QUOTA: one integer per key, the count of the current period, expiring when it ends
-- (PEXPIREAT). Read here; counted by count_quota once every other check has admitted.
local function read_quota(i, key, period, limit, cost)
  state[i] = period_end(now, period)
  reset_before[i] = state[i] - now
  return 0
end
-- Takes back a quota's INCRBY: the key is gone again when it held nothing before.
local function uncount(key, cost, count)
  if count == cost then call('DEL', key) else call('DECRBY', key, cost) end
end
-- One INCRBY; over the limit, taken back with every quota counted before it. Returns the wait.
local function count_quota(i, key, limit, cost)
  local e = state[i]
  local count = call('INCRBY', key, cost)
  rem_before[i] = limit - count + cost
  if count > limit then
    uncount(key, cost, count)
    -- latest first: a key counted twice is taken back to what it held
    for h = i - 1, 1, -1 do
      if counted[h] then
        uncount(keys[h], costs[h], counted[h])
        counted[h] = false
      end
    end
    return e - now
  end
  -- new this period: gone from its last millisecond on (Redis expires a key once its time is past)
  if count == cost then call('PEXPIREAT', key, e / 1000 - 1) end
  counted[i] = count
  rem_after[i] = limit - count
  reset_after[i] = e - now
  return 0
end
-- A request already refused: the quota is only read.
local function peek_quota(i, key, limit, cost)
  local count = tonumber(call('GET', key)) or 0
  rem_before[i] = limit - count
  if count + cost > limit then return state[i] - now end
  return 0
end
local function commit_quota() end -- counted already

local READ = { [TOKEN_BUCKET] = read_token_bucket, [SLIDING_WINDOW] = read_sliding_window, [QUOTA] = read_quota, [CONCURRENCY] = read_concurrency, [SLIDING_WINDOW_COUNTER] = read_counter }
local COMMIT = { [TOKEN_BUCKET] = commit_token_bucket, [SLIDING_WINDOW] = commit_sliding_window, [QUOTA] = commit_quota, [CONCURRENCY] = commit_concurrency, [SLIDING_WINDOW_COUNTER] = commit_counter }

-- The distinct check shapes of this call, parsed once.
local KIND, A, B, COST, PN, PW, PB, OV = {}, {}, {}, {}, {}, {}, {}, {}
local pos = 3
for j = 1, tonumber(ARGV[2]) do
  local kind = tonumber(ARGV[pos])
  A[j], B[j], COST[j] = tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2]), tonumber(ARGV[pos + 3])
  pos = pos + 4
  if kind >= OVERRIDABLE then
    kind = kind - OVERRIDABLE
    OV[j] = true
  end
  if kind >= WITH_PENALTY then
    kind = kind - WITH_PENALTY
    PN[j], PW[j], PB[j] = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
    pos = pos + 3
  end
  KIND[j] = kind
end
local next_lease = pos + 1
local next_ref = next_lease + tonumber(ARGV[pos])
local next_key = 1
local reply = {now}
local r = 1 -- reply entries written

-- The common decision, one plain token bucket: the same arithmetic, no tables.
local function decide_one_bucket(j)
  local key = KEYS[next_key]
  local wait = read_token_bucket(1, key, A[j], B[j], COST[j])
  reply[r + 1] = wait
  if wait == 0 then
    commit_token_bucket(1, key)
    reply[r + 2], reply[r + 3] = rem_after[1], reset_after[1]
  else
    reply[r + 2], reply[r + 3] = rem_before[1], reset_before[1]
  end
  r = r + 3
  next_key = next_key + 1
end

-- The same for one plain sliding window counter, inlined: calling read_counter and
-- commit_counter through decide()'s tables measured a few per cent slower (bench:memory).
local function decide_one_counter(j)
  local key = KEYS[next_key]
  local window, limit, cost = A[j], B[j], COST[j]
  local k, cur, prev = counter_state(key, window)
  local est = counter_estimate(window, k, cur, prev)
  if est + cost > limit then
    reply[r + 1] = counter_wait(window, k, cur, prev, limit, cost)
    reply[r + 2], reply[r + 3] = floor(limit - est), counter_reset(window, k, cur, prev)
  else
    counter_write(key, window, k, cur + cost, prev)
    reply[r + 1] = 0
    reply[r + 2], reply[r + 3] = floor(limit - est - cost), (k + 2) * window - now
  end
  r = r + 3
  next_key = next_key + 1
end

-- A refusal by a check with a penalty is a strike; enough strikes within the window block.
local function strike(i, j)
  local strikes = call('INCR', pkeys[i])
  if strikes == 1 then call('PEXPIRE', pkeys[i], ceil(PW[j] / 1000)) end
  if strikes < PN[j] then return 0 end
  call('SET', pkeys[i], BLOCKED, 'PX', ceil(PB[j] / 1000))
  blocked[i] = true
  reset_before[i] = PB[j]
  return PB[j]
end

-- The decision of the next n checks.
local function decide(n)
  local retry = 0
  for i = 1, n do
    local j = tonumber(ARGV[next_ref + i - 1])
    keys[i] = KEYS[next_key]
    next_key = next_key + 1
    pkeys[i], okeys[i] = false, false
    if PN[j] then pkeys[i], next_key = KEYS[next_key], next_key + 1 end
    if OV[j] then okeys[i], next_key = KEYS[next_key], next_key + 1 end
    local kind, a, b = KIND[j], A[j], B[j]
    if okeys[i] then a, b = own_numbers(okeys[i], a, b) end
    kinds[i], as[i], bs[i], costs[i], blocked[i], counted[i] = kind, a, b, COST[j], false, false
    if kind == CONCURRENCY then leases[i], next_lease = ARGV[next_lease], next_lease + 1 end
    local wait
    if pkeys[i] and tonumber(call('GET', pkeys[i])) == BLOCKED then
      -- blocked by its penalty: refused whatever the bucket holds, until the block ends
      blocked[i] = true
      wait = call('PTTL', pkeys[i]) * 1000
      if wait < 1000 then wait = 1000 end
      rem_before[i], reset_before[i] = 0, wait
    else
      wait = READ[kind](i, keys[i], a, b, costs[i])
    end
    if wait > retry then retry = wait end
  end
  -- Quotas last, counted only when the rest admits (else only read).
  for i = 1, n do
    if kinds[i] == QUOTA and not blocked[i] then
      local wait
      if retry == 0 then wait = count_quota(i, keys[i], bs[i], costs[i]) else wait = peek_quota(i, keys[i], bs[i], costs[i]) end
      if wait > retry then retry = wait end
    end
  end
  if retry > 0 then
    for i = 1, n do
      if pkeys[i] and not blocked[i] and rem_before[i] < costs[i] then
        local wait = strike(i, tonumber(ARGV[next_ref + i - 1]))
        if wait > retry then retry = wait end
      end
    end
  end
  reply[r + 1] = retry
  for i = 1, n do
    if retry == 0 then
      COMMIT[kinds[i]](i, keys[i])
      reply[r + 2 * i], reply[r + 2 * i + 1] = rem_after[i], reset_after[i]
    else
      if reset_before[i] == LATER then reset_before[i] = last_end(keys[i], kinds[i] == SLIDING_WINDOW and as[i] or 0) end
      reply[r + 2 * i], reply[r + 2 * i + 1] = blocked[i] and BLOCKED_REMAINING or rem_before[i], reset_before[i]
    end
  end
  r = r + 1 + 2 * n
  next_ref = next_ref + n
end

for _ = 1, tonumber(ARGV[1]) do
  local x = tonumber(ARGV[next_ref])
  if x < 0 then
    next_ref = next_ref + 1
    decide(-x)
  elseif KIND[x] == TOKEN_BUCKET and not PN[x] and not OV[x] then
    next_ref = next_ref + 1
    decide_one_bucket(x)
  elseif KIND[x] == SLIDING_WINDOW_COUNTER and not PN[x] and not OV[x] then
    next_ref = next_ref + 1
    decide_one_counter(x)
  else
    decide(1)
  end
end
return reply
`;
