-- The alerts page after CURSOR (empty: the first page), 10 alerts with their events.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
local cursor = os.getenv("CURSOR") or ""
local after = (cursor == "") and "null" or ('"' .. cursor .. '"')
wrk.body = '{"query":"query($a: String){alerts(first:10, after:$a){edges{cursor node{id status severity createdAt event{id source eventType description timestamp}}} pageInfo{hasNextPage endCursor}}}","variables":{"a":' .. after .. '}}'
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
