-- wrk script of `invoke bench --service`: POSTs JSON queries (unique ones for the
-- cache-miss path) and prints the latency percentiles as one JSON line.
local counter = 0
-- A new seed each run (wrk's own is fixed): "unique" queries must not repeat an earlier run's,
-- which the agent would answer from its cache.
math.randomseed(tonumber(os.getenv("BENCH_SEED") or "") or os.time())
local unique = os.getenv("BENCH_UNIQUE") == "1"
local base_query = os.getenv("BENCH_QUERY")
local path = os.getenv("BENCH_PATH")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local query = base_query
  if unique then
    counter = counter + 1
    query = query .. " case " .. tostring(counter) .. "-" .. tostring(math.random(1, 1000000000))
  end
  return wrk.format(nil, path, nil, '{"query": "' .. query .. '"}')
end
done = function(summary, latency, requests)
  io.write(string.format('BENCH {"requests": %d, "seconds": %.3f, "errors": %d, "p50": %.3f, "p95": %.3f, "p99": %.3f}\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
