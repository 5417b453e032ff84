-- One event per request, 1 in 4 HIGH (raises an alert). TOKEN (or API_KEY) from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- A sensor's key (X-API-Key) when API_KEY is set, else the bearer TOKEN.
if (os.getenv("API_KEY") or "") ~= "" then
  wrk.headers["X-API-Key"] = os.getenv("API_KEY")
else
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end
local n = 0
request = function()
  n = n + 1
  local sev = (n % 4 == 0) and "HIGH" or "LOW"
  local body = '{"query":"mutation($i: IngestEventInput!){ingestEvent(input:$i){event{id}}}","variables":{"i":{"source":"bench-'
    .. (n % 50) .. '","eventType":"Intrusion","severity":"' .. sev .. '","description":"benchmark event"}}}'
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
