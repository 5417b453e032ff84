-- The alerts page after CURSOR (empty: the first page), 10 alerts with their
-- events, narrowed by SOURCE, SINCE, UNTIL and SEARCH when those are set.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
local function var(name)
  local v = os.getenv(name) or ""
  return (v == "") and "null" or ('"' .. v .. '"')
end
wrk.body = '{"query":"query($a: String, $src: String, $since: DateTime, $until: DateTime, $q: String){alerts(first:10, after:$a, source:$src, since:$since, until:$until, search:$q){edges{cursor node{id status severity createdAt event{id source eventType description timestamp}}} pageInfo{hasNextPage endCursor}}}","variables":{"a":' .. var("CURSOR") .. ',"src":' .. var("SOURCE") .. ',"since":' .. var("SINCE") .. ',"until":' .. var("UNTIL") .. ',"q":' .. var("SEARCH") .. '}}'
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
