/**
 * Lua shared by both scripts: `period_end(t, period)`, when the quota period holding `t` (µs)
 * ends: the next multiple of `period`, or for `period` 0 the first instant of the next UTC
 * month (civil-from-days and back, on whole days). Same as `quotaPeriodEnd` (types.ts).
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
 * The one Lua script behind every Redis decision. A call carries one or more independent
 * decisions (the store coalesces the decisions of one event-loop turn); each decision is one
 * request's checks (one per policy), decided together, all-or-nothing: a denial by one check
 * consumes nothing from the others. Time comes from Redis `TIME`, in microseconds, read once
 * per call, so the instances need no clock sync.
 *
 * Contract
 *   ARGV[1]          D, the number of decisions
 *   ARGV[2]          S, the number of distinct check shapes in the call
 *   then S shapes of 4 values: kind, a, b, cost; a kind + 8 has a penalty, 3 more values:
 *   denials, window (µs), block (µs); a kind + 16 is overridable (see KEYS)
 *   then L, the number of leases, and L lease ids: one per concurrency check, in the order the
 *   checks come in the call
 *   then, per decision: a decision of one check is the (positive, 1-based) index of its shape;
 *   a decision of n > 1 checks is -n followed by the shape index of each
 *   KEYS             the key of every check, in order, each followed by its penalty's key when it
 *                    has one, then its override's key when overridable (on Cluster, all in one
 *                    hash slot)
 *     override: its key holds "<a> <b>", the identity's own numbers, used instead of the shape's
 *     penalty: its key holds the strikes (refusals by the check; PX = the window from the first)
 *       or -1 while blocked (PX = the block). A blocked check refuses; the reply's remaining is
 *       -1 and its reset the block's rest.
 *     kind 1, token bucket stored GCRA-style: one integer per key, the theoretical arrival
 *       time (TAT, µs). a = emission interval T (µs per token), b = burst (tokens).
 *       PX TTL = time until the bucket is full again.
 *     kind 2, exact sliding window: a sorted set of admission times (µs).
 *       a = window (µs), b = limit (requests in any window).
 *     kind 3, quota: one integer per key, the count of the current period, expiring when the
 *       period ends (PEXPIREAT). a = period (µs; 0: the UTC calendar month), b = limit per
 *       period. Counted with INCRBY after the other checks admitted, taken back when over.
 *     kind 4, concurrency: a sorted set of leases, member `<lease id>#<j>` (j = 1..cost),
 *       score = when the lease ends (µs); ended leases are dropped when the set is full (below
 *       the limit they change no decision). a = lease (µs), b = limit (leases held at once).
 *       The key lives until its latest lease ends. A denial's wait
 *       is until the lease that frees room ends, at most 1 s (a request usually finishes first).
 *   Reply: the script's clock (µs, Redis TIME: the admission time of every check it admits),
 *     then, per decision in order: retry_after_us, then remaining_i, reset_us_i for each of its
 *     checks. retry_after_us is 0 exactly when the decision admits the request (a denial
 *     always has a positive wait)
 *     remaining_i: what check i has left after this request (before it, when denied: a
 *     denied request changes nothing);
 *     reset_us_i: time until check i is back to full; retry_after_us: 0 when allowed, else
 *     the wait until every denying check would admit the request.
 */

export const DECIDE_SCRIPT = `
-- Numbers passed to redis.call are written with 17 significant digits, so the µs integers
-- (below 2^53) reach Redis exactly; only string concatenation would round them.
local call, tonumber, floor, ceil = redis.call, tonumber, math.floor, math.ceil
local time = call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now_s = string.format('%d', now)
local reply = {now}
local r = 1
local k = 0 -- keys used so far
${PERIOD_END_LUA}

-- The distinct check shapes of this call, parsed once.
local S = tonumber(ARGV[2])
local KIND, A, B, COST, PN, PW, PB, OV = {}, {}, {}, {}, {}, {}, {}, {}
local o = 3
for j = 1, S do
  local kind = tonumber(ARGV[o])
  A[j] = tonumber(ARGV[o + 1])
  B[j] = tonumber(ARGV[o + 2])
  COST[j] = tonumber(ARGV[o + 3])
  o = o + 4
  if kind >= 16 then
    -- overridable: its identity's own numbers may be stored at the check's override key
    kind = kind - 16
    OV[j] = true
  end
  if kind >= 8 then
    -- with a penalty: denials, window (µs), block (µs)
    kind = kind - 8
    PN[j], PW[j], PB[j] = tonumber(ARGV[o]), tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2])
    o = o + 3
  end
  KIND[j] = kind
end
local q = o + 1 -- next lease id to read
local p = q + tonumber(ARGV[o]) -- next ARGV to read

-- Scratch tables of the general path, reused by every decision of the call (entries 1..n are
-- written before they are read).
local state, rem_before, reset_before, rem_after, reset_after = {}, {}, {}, {}, {}
local kinds, as, bs, costs, ends, leases = {}, {}, {}, {}, {}, {}
local keys, pkeys, okeys, blocked, counted = {}, {}, {}, {}, {}

-- Takes back a quota's INCRBY: the key is gone again when it held nothing before.
local function uncount(key, cost, count)
  if count == cost then call('DEL', key) else call('DECRBY', key, cost) end
end

-- The common decision: one token bucket. Same arithmetic as the general path, no tables.
local function decide_one_bucket(j)
  local key = KEYS[k + 1]
  local interval, burst, cost = A[j], B[j], COST[j]
  local tat = tonumber(call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - interval * burst
  if now < allow_at then
    reply[r + 1] = allow_at - now
    reply[r + 2] = floor((now + interval * burst - tat) / interval)
    reply[r + 3] = tat - now
  else
    call('SET', key, new_tat, 'PX', ceil((new_tat - now) / 1000))
    reply[r + 1] = 0
    reply[r + 2] = floor((now + interval * burst - new_tat) / interval)
    reply[r + 3] = new_tat - now
  end
  r = r + 3
  k = k + 1
end

local function decide(n)
  local allowed = 1
  local retry = 0
  -- each check's key, then its penalty's key when it has one
  local kk = k
  for i = 1, n do
    kk = kk + 1
    keys[i] = KEYS[kk]
    local j = tonumber(ARGV[p + i - 1])
    if PN[j] then
      kk = kk + 1
      pkeys[i] = KEYS[kk]
    else
      pkeys[i] = false
    end
    if OV[j] then
      kk = kk + 1
      okeys[i] = KEYS[kk]
    else
      okeys[i] = false
    end
  end
  -- per check: the state to write, and remaining/reset before and after this request
  for i = 1, n do
    local key = keys[i]
    local j = tonumber(ARGV[p + i - 1])
    local kind, a, b, cost = KIND[j], A[j], B[j], COST[j]
    if okeys[i] then
      -- an override: "<a> <b>" for this identity instead of the policy's numbers
      local ov = call('GET', okeys[i])
      if ov then
        local oa, ob = string.match(ov, '^(%d+) (%d+)$')
        if oa then a, b = tonumber(oa), tonumber(ob) end
      end
    end
    kinds[i], as[i], bs[i], costs[i] = kind, a, b, cost
    blocked[i] = false
    counted[i] = false
    if kind == 4 then
      leases[i] = ARGV[q]
      q = q + 1
    end
    if pkeys[i] and tonumber(call('GET', pkeys[i])) == -1 then
      -- blocked by its penalty: refused whatever the bucket holds, until the block ends
      blocked[i] = true
      allowed = 0
      local left = call('PTTL', pkeys[i]) * 1000
      if left < 1000 then left = 1000 end
      rem_before[i] = 0
      reset_before[i] = left
      if left > retry then retry = left end
    elseif kind == 1 then
      local interval, burst = a, b
      local tat = tonumber(call('GET', key)) or now
      if tat < now then tat = now end
      local new_tat = tat + interval * cost
      local allow_at = new_tat - interval * burst
      rem_before[i] = floor((now + interval * burst - tat) / interval)
      reset_before[i] = tat - now
      if now < allow_at then
        allowed = 0
        if allow_at - now > retry then retry = allow_at - now end
      else
        state[i] = new_tat
        rem_after[i] = floor((now + interval * burst - new_tat) / interval)
        reset_after[i] = new_tat - now
      end
    elseif kind == 3 then
      -- counted below, once every other check has admitted
      ends[i] = period_end(now, a)
      reset_before[i] = ends[i] - now
    elseif kind == 4 then
      local lease_us, limit = a, b
      local count = call('ZCARD', key)
      if count + cost > limit then
        -- full: drop the ended leases first (only then: below the limit they change no decision)
        count = count - call('ZREMRANGEBYSCORE', key, '-inf', now_s)
      end
      state[i] = count
      rem_before[i] = limit - count
      -- the latest lease's end, read only for a denial's reply (-1: not read yet)
      reset_before[i] = 0
      if count > 0 then reset_before[i] = -1 end
      if count + cost > limit then
        allowed = 0
        local frees = call('ZRANGE', key, count + cost - limit - 1, count + cost - limit - 1, 'WITHSCORES')
        local wait = 1000000
        if frees[2] and tonumber(frees[2]) - now < wait then wait = tonumber(frees[2]) - now end
        if wait < 1 then wait = 1 end
        if wait > retry then retry = wait end
      else
        rem_after[i] = limit - count - cost
        reset_after[i] = lease_us
      end
    else
      local window, limit = a, b
      call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - window))
      local count = call('ZCARD', key)
      rem_before[i] = limit - count
      -- the newest admission's window end, read only for a denial's reply (-1: not read yet)
      reset_before[i] = 0
      if count > 0 then reset_before[i] = -1 end
      if count + cost > limit then
        allowed = 0
        local oldest = call('ZRANGE', key, count + cost - limit - 1, count + cost - limit - 1, 'WITHSCORES')
        -- a cost above the limit can never pass: report a whole window
        local wait = window
        if oldest[2] then wait = tonumber(oldest[2]) + window - now end
        if wait > retry then retry = wait end
      else
        state[i] = count
        rem_after[i] = limit - count - cost
        reset_after[i] = window
      end
    end
  end

  -- Quotas last, each with one INCRBY when the rest admits (taken back if it goes over the
  -- limit, with every quota counted before it); read only when the request is already refused.
  for i = 1, n do
    if kinds[i] == 3 and not blocked[i] then
      local key, limit, cost, e = keys[i], bs[i], costs[i], ends[i]
      if allowed == 1 then
        local count = call('INCRBY', key, cost)
        rem_before[i] = limit - count + cost
        if count > limit then
          allowed = 0
          uncount(key, cost, count)
          if e - now > retry then retry = e - now end
          -- latest first: a key counted twice is taken back to what it held
          for h = i - 1, 1, -1 do
            if counted[h] then
              uncount(keys[h], costs[h], state[h])
              counted[h] = false
            end
          end
        else
          -- new this period: gone from its last millisecond on (Redis expires a key once its time is past)
          if count == cost then call('PEXPIREAT', key, e / 1000 - 1) end
          counted[i] = true
          state[i] = count
          rem_after[i] = limit - count
          reset_after[i] = e - now
        end
      else
        local count = tonumber(call('GET', key)) or 0
        rem_before[i] = limit - count
        if count + cost > limit and e - now > retry then retry = e - now end
      end
    end
  end

  if allowed == 0 then
    -- a refusal by a check with a penalty is a strike; enough strikes within the window block
    for i = 1, n do
      if pkeys[i] and not blocked[i] and rem_before[i] < costs[i] then
        local j = tonumber(ARGV[p + i - 1])
        local strikes = call('INCR', pkeys[i])
        if strikes == 1 then call('PEXPIRE', pkeys[i], ceil(PW[j] / 1000)) end
        if strikes >= PN[j] then
          call('SET', pkeys[i], -1, 'PX', ceil(PB[j] / 1000))
          blocked[i] = true
          reset_before[i] = PB[j]
          if PB[j] > retry then retry = PB[j] end
        end
      end
    end
  end

  reply[r + 1] = retry
  if allowed == 1 then
    for i = 1, n do
      local key = keys[i]
      if kinds[i] == 1 then
        local ttl_ms = ceil((state[i] - now) / 1000)
        call('SET', key, state[i], 'PX', ttl_ms)
      elseif kinds[i] == 4 then
        local ends_at = string.format('%d', now + as[i])
        for j = 1, costs[i] do
          call('ZADD', key, ends_at, leases[i] .. '#' .. j)
        end
        -- a new set has no TTL (GT would not set one); else only ever extend it
        if state[i] == 0 then
          call('PEXPIRE', key, ceil(as[i] / 1000))
        else
          call('PEXPIRE', key, ceil(as[i] / 1000), 'GT')
        end
      elseif kinds[i] == 2 then
        for j = 1, costs[i] do
          call('ZADD', key, now_s, now_s .. ':' .. (state[i] + j))
        end
        call('PEXPIRE', key, ceil(as[i] / 1000))
      end
      reply[r + 2 * i] = rem_after[i]
      reply[r + 2 * i + 1] = reset_after[i]
    end
  else
    for i = 1, n do
      -- -1: refused by its penalty's block (the store reports 0 left and the block)
      if blocked[i] then reply[r + 2 * i] = -1 else reply[r + 2 * i] = rem_before[i] end
      if reset_before[i] == -1 then
        local last = call('ZRANGE', keys[i], -1, -1, 'WITHSCORES')
        reset_before[i] = tonumber(last[2]) - now
        if kinds[i] == 2 then reset_before[i] = reset_before[i] + as[i] end
        -- leases that all ended, not dropped yet (the set was not full)
        if reset_before[i] < 0 then reset_before[i] = 0 end
      end
      reply[r + 2 * i + 1] = reset_before[i]
    end
  end
  r = r + 1 + 2 * n
  k = kk
  p = p + n
end

for _ = 1, tonumber(ARGV[1]) do
  local x = tonumber(ARGV[p])
  p = p + 1
  if x > 0 then
    -- one check, of shape x
    if KIND[x] == 1 and not PN[x] and not OV[x] then
      decide_one_bucket(x)
    else
      p = p - 1
      decide(1)
    end
  else
    decide(-x)
  end
end
return reply
`;

/**
 * Gives back the leases of finished requests, many in one call (the releases of one event-loop
 * turn, per hash slot on Cluster).
 *
 * Contract
 *   KEYS      the concurrency key of each lease (repeated for several leases of one key)
 *   ARGV      per key 2 values: lease id, cost (its members are `<lease id>#1..cost`)
 *   Reply: the number of members removed
 */
export const RELEASE_SCRIPT = `
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
 * Settles the checks of one hash slot after a decision across slots (see the Redis store):
 * gives back what an earlier step admitted when a later one denied, or only reads checks a
 * denial left unvisited. Same clock, same arithmetic as {@link DECIDE_SCRIPT}.
 *
 * Contract
 *   KEYS      the key of every check, each followed by its override's key when its kind has
 *             + 16 (on Cluster, all in one hash slot)
 *   ARGV[1]   at: the admission time (µs) of the step being given back, or -1 to only read
 *   then per check 5 values: kind, a, b, cost (as in DECIDE_SCRIPT), lease id ('' but for kind 4)
 *   Reply, per check: remaining, reset_us, retry_us (0 when `cost` would be admitted now)
 *   Giving back a concurrency check removes its lease's members.
 *   Giving back a quota takes `cost` off its count when `at` is in the current period.
 *   Giving back a token bucket moves its TAT back by interval x cost (a TAT in the past is a full
 *   bucket). Giving back a sliding window removes `cost` admissions made at `at`: exactly the
 *   ones the step added, or others of the same instant, which are the same to the window.
 */
export const SETTLE_SCRIPT = `
local call, tonumber, floor, ceil = redis.call, tonumber, math.floor, math.ceil
local time = call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local at = tonumber(ARGV[1])
local reply = {}
local kk = 0
${PERIOD_END_LUA}
for i = 1, (#ARGV - 1) / 5 do
  kk = kk + 1
  local key = KEYS[kk]
  local o = 2 + 5 * (i - 1)
  local kind, a, b, cost = tonumber(ARGV[o]), tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])
  if kind >= 16 then
    kind = kind - 16
    kk = kk + 1
    local ov = call('GET', KEYS[kk])
    if ov then
      local oa, ob = string.match(ov, '^(%d+) (%d+)$')
      if oa then a, b = tonumber(oa), tonumber(ob) end
    end
  end
  if kind == 1 then
    local interval, burst = a, b
    local tat = tonumber(call('GET', key)) or now
    if at >= 0 then
      tat = tat - interval * cost
      if tat <= now then call('DEL', key) else call('SET', key, tat, 'PX', ceil((tat - now) / 1000)) end
    end
    if tat < now then tat = now end
    local wait = tat + interval * cost - interval * burst - now
    if wait < 0 then wait = 0 end
    reply[3 * i - 2] = floor((now + interval * burst - tat) / interval)
    reply[3 * i - 1] = tat - now
    reply[3 * i] = wait
  elseif kind == 4 then
    local limit = b
    if at >= 0 then
      local lease = ARGV[o + 4]
      for j = 1, cost do
        call('ZREM', key, lease .. '#' .. j)
      end
    end
    call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now))
    local count = call('ZCARD', key)
    local reset, wait = 0, 0
    if count > 0 then
      local last = call('ZRANGE', key, -1, -1, 'WITHSCORES')
      reset = tonumber(last[2]) - now
    end
    if count + cost > limit then
      local frees = call('ZRANGE', key, count + cost - limit - 1, count + cost - limit - 1, 'WITHSCORES')
      wait = 1000000
      if frees[2] and tonumber(frees[2]) - now < wait then wait = tonumber(frees[2]) - now end
      if wait < 1 then wait = 1 end
    end
    reply[3 * i - 2] = limit - count
    reply[3 * i - 1] = reset
    reply[3 * i] = wait
  elseif kind == 3 then
    local limit, e = b, period_end(now, a)
    local count = tonumber(call('GET', key)) or 0
    -- only what was taken in this same period is given back (a new period starts from 0)
    if at >= 0 and period_end(at, a) == e then
      count = count - cost
      if count <= 0 then call('DEL', key) else call('SET', key, count, 'KEEPTTL') end
      if count < 0 then count = 0 end
    end
    local wait = 0
    if count + cost > limit then wait = e - now end
    reply[3 * i - 2] = limit - count
    reply[3 * i - 1] = e - now
    reply[3 * i] = wait
  else
    local window, limit = a, b
    call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - window))
    if at >= 0 then
      local t = string.format('%d', at)
      local mine = call('ZRANGEBYSCORE', key, t, t, 'LIMIT', 0, cost)
      if #mine > 0 then call('ZREM', key, unpack(mine)) end
    end
    local count = call('ZCARD', key)
    local reset, wait = 0, 0
    if count > 0 then
      local newest = call('ZRANGE', key, -1, -1, 'WITHSCORES')
      reset = tonumber(newest[2]) + window - now
    end
    if count + cost > limit then
      local oldest = call('ZRANGE', key, count + cost - limit - 1, count + cost - limit - 1, 'WITHSCORES')
      wait = window
      if oldest[2] then wait = tonumber(oldest[2]) + window - now end
    end
    reply[3 * i - 2] = limit - count
    reply[3 * i - 1] = reset
    reply[3 * i] = wait
  end
end
return reply
`;
