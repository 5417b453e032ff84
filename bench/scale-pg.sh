#!/usr/bin/env bash
# PostgreSQL at 10 million events: ingest, pages and a day's purge.
#
#   bench/scale-pg.sh [--events N] [--days D] [--seconds S]
#
# 1. A fresh database is migrated by the service, then filled in SQL (the
#    service would take most of an hour): N events (default 10,000,000)
#    spread evenly over D days (default 10) ending now, one in ten HIGH
#    with its alert; the alerts of the two oldest days RESOLVED an hour
#    after they were raised, the rest OPEN; the counters and lifecycle sums
#    set to match, then VACUUM ANALYZE (as autovacuum would by then).
# 2. On that database: single-event ingest at 64 connections and batches
#    of 1,000 at 8 (S seconds each, default 10), the alerts and events
#    pages at depth 1 and half way down, 16 connections each.
# 3. A purge of one day's rows: the service is restarted with
#    THREATWATCH_RETENTION=(D-1) days, and its first pass removes the
#    oldest day (its unlinked events and its resolved alerts with their
#    events; the open alerts of that day keep theirs). Prints how long the
#    pass took, what it removed and the ingest rate at 64 connections
#    while it ran, against the rate just before it.
#
# $THREATWATCH_BENCH_PG (default postgres://postgres@127.0.0.1:5432) must
# allow creating a database; the database threatwatch_scale is dropped at
# the end. Release build; wrk installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=10000000 DAYS=10 SECS=10
while [ $# -gt 0 ]; do
  case "$1" in
    --events) EVENTS=$2; shift 2 ;;
    --days) DAYS=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk)) >/dev/null
[ -n "${TW_BIN:-}" ] || cargo build --release --quiet --bin threatwatch
BIN=${TW_BIN:-target/release/threatwatch}
PG=${THREATWATCH_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
DB=threatwatch_scale
. bench/ports.sh
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
work=$(mktemp -d); pid=""
stop() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
trap 'stop; rm -rf "$work"; psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1' EXIT
sql() { psql "$PG/$DB" -v ON_ERROR_STOP=1 -qAt "$@"; }

start() {  # [ENV=VALUE...]
  env DATABASE_URL="$PG/$DB" THREATWATCH_BIND=127.0.0.1:$PORT THREATWATCH_ADMIN_PASSWORD='Bench-Pass-123!' \
    THREATWATCH_RATE_ANON=off THREATWATCH_RATE_USER=off THREATWATCH_RATE_SENSOR=off THREATWATCH_ACCESS_TTL=2h \
    THREATWATCH_BCRYPT_COST=4 RUST_LOG=warn "$@" "$BIN" serve >>"$work/log" 2>&1 & pid=$!
  for _ in $(seq 300); do curl -fs "$URL/readyz" >/dev/null && break; sleep 0.2; done
  TOKEN=$(curl -fs "$URL/graphql" -H 'Content-Type: application/json' \
    -d '{"query":"mutation{ login(username:\"admin\", password:\"Bench-Pass-123!\"){ accessToken } }"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["accessToken"])')
  export TOKEN
}
gql() { curl -fs "$URL/graphql" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" -d "$1"; }
field() { sed -E "s/.*$1=([^ ]+).*/\1/" <<<"$2"; }
cursor() { printf 'k1:%d' "$1" | base64 | tr '+/' '-_' | tr -d '=\n'; }
page() {  # label list cursor
  local fields; fields=$([ "$2" = alerts ] && echo "id createdAt" || echo "id timestamp")
  printf '{"query":"query($a:String){%s(first:10, after:$a){edges{cursor node{%s}} pageInfo{hasNextPage}}}","variables":{"a":%s}}' \
    "$2" "$fields" "$([ -z "$3" ] && echo null || echo "\"$3\"")" >"$work/body.json"
  if ! gql "$(cat "$work/body.json")" | grep -q '"id"'; then echo "$1: FAILED"; return; fi
  local r; r=$(BODY_FILE=$work/body.json wrk -t2 -c16 -d"${SECS}s" -s bench/body.lua "$URL/graphql" | grep RESULT)
  echo "$1: $(field rps "$r") req/s, p50 $(field p50_ms "$r") ms, p99 $(field p99_ms "$r") ms"
}
ingest() {  # label
  local r; r=$(wrk -t2 -c64 -d"${SECS}s" -s bench/ingest.lua "$URL/graphql" | grep RESULT)
  echo "$1: $(field rps "$r") events/s, p50 $(field p50_ms "$r") ms, p99 $(field p99_ms "$r") ms"
}

psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
psql "$PG/postgres" -qc "CREATE DATABASE $DB" >/dev/null
start; stop
echo "# filling $EVENTS events over $DAYS days in SQL"
began=$(date +%s)
sql <<SQL
CREATE TEMP TABLE clock AS SELECT (now() AT TIME ZONE 'utc') AS now;
INSERT INTO events (source, event_type, severity, description, created_at)
SELECT 'scale-' || (i % 100), 'Scan', CASE WHEN i % 10 = 0 THEN 'HIGH' ELSE 'LOW' END,
       'scale event w' || (i % 1000),
       (SELECT now FROM clock) - interval '$DAYS days' + i * (interval '$DAYS days' / $EVENTS)
FROM generate_series(1, $EVENTS) AS i;
INSERT INTO alerts (event_id, severity, status, created_at, updated_at, resolved_at,
                    seconds_to_resolve, source, event_type, last_seen_at)
SELECT e.id, 'HIGH', r.status, e.created_at, e.created_at + r.after, r.resolved_at, r.seconds,
       e.source, e.event_type, e.created_at
FROM events e, clock,
     LATERAL (SELECT CASE WHEN e.created_at < clock.now - interval '$((DAYS - 2)) days'
                          THEN 'RESOLVED' ELSE 'OPEN' END AS status) s,
     LATERAL (SELECT s.status,
                     CASE WHEN s.status = 'RESOLVED' THEN interval '1 hour' ELSE interval '0' END AS after,
                     CASE WHEN s.status = 'RESOLVED' THEN e.created_at + interval '1 hour' END AS resolved_at,
                     CASE WHEN s.status = 'RESOLVED' THEN 3600.0 END AS seconds) r
WHERE e.severity = 'HIGH'
ORDER BY e.id;
UPDATE events e SET alert_id = a.id FROM alerts a WHERE a.event_id = e.id;
UPDATE alert_counts c SET count = n.count
FROM (SELECT status, severity, count(*) FROM alerts GROUP BY 1, 2) n
WHERE c.status = n.status AND c.severity = n.severity;
UPDATE alert_lifecycle SET resolved = s.n, seconds_to_resolve = s.total
FROM (SELECT count(*) AS n, coalesce(sum(seconds_to_resolve), 0) AS total
      FROM alerts WHERE status = 'RESOLVED') s;
SQL
sql -c "VACUUM ANALYZE"
echo "# filled in $(( $(date +%s) - began )) s; database $(sql -c "SELECT pg_size_pretty(pg_database_size('$DB'))")"

start
max_alert=$(sql -c "SELECT max(id) FROM alerts"); max_event=$(sql -c "SELECT max(id) FROM events")
alerts=$(sql -c "SELECT count(*) FROM alerts")
page "alerts page 1 of $alerts" alerts ""
page "alerts page at depth $((alerts / 2))" alerts "$(cursor $((max_alert - alerts / 2)))"
page "events page 1 of $EVENTS" events ""
page "events page at depth $((EVENTS / 2))" events "$(cursor $((max_event - EVENTS / 2)))"
ingest "single-event ingest, 64 connections (1 in 4 HIGH)"
r=$(wrk -t2 -c8 -d"${SECS}s" -s bench/batch.lua "$URL/graphql" | grep RESULT)
echo "ingestEvents x1000, 8 connections: $(awk "BEGIN{printf \"%.0f\", $(field rps "$r")*1000}") events/s, p99 $(field p99_ms "$r") ms"
stop

echo "# purge of the oldest day: THREATWATCH_RETENTION=$((DAYS - 1))d"
before=$(sql -c "SELECT count(*) FROM events")
start THREATWATCH_RETENTION=$((DAYS - 1))d
began=$(date +%s.%N)
ingest "ingest while the pass runs"
for _ in $(seq 3600); do
  detail=$(sql -c "SELECT detail FROM audit_log WHERE action = 'RETENTION_PURGED' ORDER BY id LIMIT 1")
  [ -n "$detail" ] && break
  sleep 1
done
took=$(awk "BEGIN{printf \"%.0f\", $(date +%s.%N) - $began}")
echo "pass: $detail, done within ${took} s ($(( before - $(sql -c "SELECT count(*) FROM events") )) events fewer, ingest's included)"
ingest "ingest after the pass"
stop
