-- 1000 events per request with ingestEvents (1 in 4 HIGH). TOKEN (or API_KEY) from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- A sensor's key (X-API-Key) when API_KEY is set, else the bearer TOKEN.
if (os.getenv("API_KEY") or "") ~= "" then
  wrk.headers["X-API-Key"] = os.getenv("API_KEY")
else
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end
local items = {}
for i = 1, 1000 do
  local sev = (i % 4 == 0) and "HIGH" or "LOW"
  items[i] = '{"source":"bench-' .. (i % 50) .. '","eventType":"Intrusion","severity":"' .. sev .. '","description":"benchmark event"}'
end
wrk.body = '{"query":"mutation($i: [IngestEventInput!]!){ingestEvents(inputs:$i){event{id}}}","variables":{"i":[' .. table.concat(items, ",") .. ']}}'
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
