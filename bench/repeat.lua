-- Every event HIGH; 90% repeat one of 1,000 dedupKeys (folded into open
-- alerts), 10% carry none. With REPEAT=0 no event carries a key: the plain
-- all-HIGH rate to compare with. TOKEN from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
local repeating = os.getenv("REPEAT") ~= "0"
local n = 0
request = function()
  n = n + 1
  local key = ""
  if repeating and n % 10 ~= 0 then
    key = ',"dedupKey":"k' .. (n % 1000) .. '"'
  end
  local body = '{"query":"mutation($i: IngestEventInput!){ingestEvent(input:$i){event{id}}}","variables":{"i":{"source":"bench-src","eventType":"BruteForce","severity":"HIGH","description":"benchmark event"'
    .. key .. '}}}'
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
