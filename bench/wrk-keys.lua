-- wrk script of `npm run bench`: the client key in the `x-client-key` header rotating over
-- WRK_KEYS distinct 8-character values (as bench/limits.ts's clientKey), and one JSON line at the
-- end: requests, seconds, latency percentiles (µs), errors by kind.
local keys = tonumber(os.getenv("WRK_KEYS") or "10000")
local next = 0

request = function()
  local key = string.format("c%07d", next % keys)
  next = next + 1
  return wrk.format(nil, nil, { ["x-client-key"] = key })
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"statusErrors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
