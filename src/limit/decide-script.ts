/**
 * The one Lua script behind every Redis decision. Several checks (one per policy on the
 * request) are decided together, all-or-nothing: a denial by one consumes nothing from the
 * others. Time comes from Redis `TIME`, in microseconds, so the instances need no clock sync.
 *
 * Contract
 *   KEYS[i]          the key of check i (all in one hash slot on Cluster)
 *   ARGV[4i-3..4i]   check i: kind, a, b, cost
 *     kind 1, token bucket stored GCRA-style: one integer per key, the theoretical arrival
 *       time (TAT, µs). a = emission interval T (µs per token), b = burst (tokens).
 *       PX TTL = time until the bucket is full again.
 *     kind 2, exact sliding window: a sorted set of admission times (µs).
 *       a = window (µs), b = limit (requests in any window).
 *   Reply {allowed (1|0), retry_after_us, remaining_1, reset_us_1, remaining_2, reset_us_2, ...}
 *     remaining_i: what check i has left after this request (before it, when denied: a
 *     denied request changes nothing);
 *     reset_us_i: time until check i is back to full; retry_after_us: 0 when allowed, else
 *     the wait until every denying check would admit the request.
 */
export const DECIDE_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local n = #KEYS
local allowed = 1
local retry = 0
-- per check: the state to write, and remaining/reset before and after this request
local state, rem_before, reset_before, rem_after, reset_after = {}, {}, {}, {}, {}

for i = 1, n do
  local key = KEYS[i]
  local kind = tonumber(ARGV[4 * i - 3])
  local a = tonumber(ARGV[4 * i - 2])
  local b = tonumber(ARGV[4 * i - 1])
  local cost = tonumber(ARGV[4 * i])
  if kind == 1 then
    local interval, burst = a, b
    local tat = tonumber(redis.call('GET', key)) or now
    if tat < now then tat = now end
    local new_tat = tat + interval * cost
    local allow_at = new_tat - interval * burst
    rem_before[i] = math.floor((now + interval * burst - tat) / interval)
    reset_before[i] = tat - now
    if now < allow_at then
      allowed = 0
      if allow_at - now > retry then retry = allow_at - now end
    else
      state[i] = new_tat
      rem_after[i] = math.floor((now + interval * burst - new_tat) / interval)
      reset_after[i] = new_tat - now
    end
  else
    local window, limit = a, b
    redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - window))
    local count = redis.call('ZCARD', key)
    rem_before[i] = limit - count
    reset_before[i] = 0
    if count > 0 then
      local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
      reset_before[i] = tonumber(newest[2]) + window - now
    end
    if count + cost > limit then
      allowed = 0
      local oldest = redis.call('ZRANGE', key, count + cost - limit - 1, count + cost - limit - 1, 'WITHSCORES')
      local wait = tonumber(oldest[2]) + window - now
      if wait > retry then retry = wait end
    else
      state[i] = count
      rem_after[i] = limit - count - cost
      reset_after[i] = window
    end
  end
end

local reply = {allowed, retry}
if allowed == 1 then
  for i = 1, n do
    local key = KEYS[i]
    local kind = tonumber(ARGV[4 * i - 3])
    if kind == 1 then
      local ttl_ms = math.ceil((state[i] - now) / 1000)
      redis.call('SET', key, string.format('%d', state[i]), 'PX', ttl_ms)
    else
      local window = tonumber(ARGV[4 * i - 2])
      local cost = tonumber(ARGV[4 * i])
      for j = 1, cost do
        local member = string.format('%d', now) .. ':' .. (state[i] + j)
        redis.call('ZADD', key, string.format('%d', now), member)
      end
      redis.call('PEXPIRE', key, math.ceil(window / 1000))
    end
    reply[2 * i + 1] = rem_after[i]
    reply[2 * i + 2] = reset_after[i]
  end
else
  for i = 1, n do
    reply[2 * i + 1] = rem_before[i]
    reply[2 * i + 2] = reset_before[i]
  end
end
return reply
`;
