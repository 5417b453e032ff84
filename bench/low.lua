-- One LOW event per request (no alert, so retention may delete it), from 50
-- sources. TOKEN from the environment. Prints p99.9 and the slowest request
-- too: retention's bench asks how long any ingest waited on a purge.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
local n = 0
-- DELAY_MS: each connection waits this long before each request, which
-- caps the rate (16 connections at 10 ms: at most 1,600 events/s).
local pause = tonumber(os.getenv("DELAY_MS") or "")
if pause then delay = function() return pause end end
request = function()
  n = n + 1
  local body = '{"query":"mutation($i: IngestEventInput!){ingestEvent(input:$i){event{id}}}","variables":{"i":{"source":"bench-'
    .. (n % 50) .. '","eventType":"Scan","severity":"LOW","description":"benchmark event ' .. n .. '"}}}'
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
