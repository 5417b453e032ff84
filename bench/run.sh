#!/usr/bin/env bash
# The threatwatch benchmark: one command, one table.
#
#   bench/run.sh [--alerts N] [--seconds S] [--backend sqlite|postgres|both] [--lists-only]
#
# Builds in release mode, and for each backend: starts the server on a fresh
# database, drives it with wrk (installed from the distribution if missing),
# and prints ingest rates (single events and 1000-event batches at 1/16/64
# connections, single events also without group commit, both also with a
# sensor's X-API-Key instead of a bearer token), p50/p99 latency, list latency
# at depths 1 / 1,000 / 500,000 of a database filled to N alerts (default
# 1,000,000), the server's peak RSS, and the raw-insert ceilings of the same
# storage next to them (a bare table, and the rows the service writes for a
# batch into its own schema: see examples/raw_insert.rs), with the issue's
# ratios; then filtered alert pages on the same database (source + time
# range, and searches for a word every alert has and for one in 1 of 1,000)
# beside the unfiltered first page, with their cost ratios. --lists-only
# skips the ingest runs and only fills and pages. PostgreSQL: $THREATWATCH_BENCH_PG (default
# postgres://postgres@127.0.0.1:5432) must allow creating a database.
set -euo pipefail
cd "$(dirname "$0")/.."

ALERTS=1000000
SECONDS_PER_RUN=10
BACKENDS="sqlite postgres"
LISTS_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --lists-only) LISTS_ONLY=1; shift ;;
    --alerts) ALERTS=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --backend) BACKENDS=$([ "$2" = both ] && echo "sqlite postgres" || echo "$2"); shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
PG=${THREATWATCH_BENCH_PG:-postgres://postgres@127.0.0.1:5432}

if ! command -v wrk >/dev/null; then
  echo "installing wrk…" >&2
  (apt-get install -y wrk || (apt-get update && apt-get install -y wrk)) >/dev/null
fi
command -v psql >/dev/null || BACKENDS=${BACKENDS/postgres/}

cargo build --release --quiet --bin threatwatch --example raw_insert
BIN=target/release/threatwatch
RAW=target/release/examples/raw_insert
WORK=$(mktemp -d)
. bench/ports.sh
PORT=$(free_port)
SERVER=""
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT

PASSWORD=bench-password-1
RESULTS=()
row() { RESULTS+=("$(printf '| %-9s | %-52s | %12s | %8s | %8s |' "$@")"); }

start_server() { # url [extra env...]
  local url=$1; shift
  env DATABASE_URL="$url" THREATWATCH_BIND=127.0.0.1:$PORT THREATWATCH_ADMIN_PASSWORD=$PASSWORD \
      THREATWATCH_RATE_ANON=off THREATWATCH_RATE_USER=off THREATWATCH_RATE_SENSOR=off \
      THREATWATCH_BCRYPT_COST=4 THREATWATCH_ACCESS_TTL=2h RUST_LOG=warn "$@" \
      "$BIN" >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
  TOKEN=$(curl -s "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' \
    -d "{\"query\":\"mutation{login(username:\\\"admin\\\",password:\\\"$PASSWORD\\\"){accessToken}}\"}" \
    | sed -E 's/.*"accessToken":"([^"]+)".*/\1/')
  export TOKEN
}

stop_server() { kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""; }

peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$SERVER/status"; }
# Resident memory now, split: anonymous (the heap, SQLite's page caches) and
# file-backed (the binary and other mapped files).
rss_split() { awk '/RssAnon/ {a=$2} /RssFile/ {f=$2} END {printf "%.0f anon + %.0f file", a/1024, f/1024}' "/proc/$SERVER/status"; }

wrk_run() { # connections script [seconds]
  local c=$1 script=$2 secs=${3:-$SECONDS_PER_RUN}
  local t=$(( c < 2 ? 1 : 2 ))
  wrk -t"$t" -c"$c" -d"${secs}s" --timeout 10s -s "bench/$script" "http://127.0.0.1:$PORT/graphql" \
    | grep '^RESULT' | head -n1
}
field() { sed -E "s/.* $1=([^ ]+).*/\1/" <<<"$2"; }

cursor_at_depth() { # depth max_id
  local id=$(( $2 - $1 ))
  printf 'k1:%d' "$id" | base64 | tr '+/' '-_' | tr -d '=\n'
}

fresh_db() { # backend -> url
  if [ "$1" = sqlite ]; then
    rm -f "$WORK"/tw.db*; echo "sqlite://$WORK/tw.db"
  else
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS threatwatch_bench WITH (FORCE)" >/dev/null
    psql "$PG/postgres" -qc "CREATE DATABASE threatwatch_bench" >/dev/null
    echo "$PG/threatwatch_bench"
  fi
}

for backend in $BACKENDS; do
  echo "== $backend" >&2
  if [ "$LISTS_ONLY" = 0 ]; then
    # Raw ceilings, on their own database.
    url=$(fresh_db "$backend")
    raw1=$("$RAW" "$url" single "$SECONDS_PER_RUN" | sed 's/rows_per_sec=//')
    rawb=$("$RAW" "$url" batch "$SECONDS_PER_RUN" | sed 's/rows_per_sec=//')
    row "$backend" "raw insert, 1 row per transaction (ceiling)" "$raw1 rows/s" "" ""
    row "$backend" "raw insert, 1000 rows per transaction (ceiling)" "$rawb rows/s" "" ""
    # The rows the service writes for 1000-event batches, into its own schema.
    url=$(fresh_db "$backend")
    raws=$("$RAW" "$url" service-batch "$SECONDS_PER_RUN" | sed 's/rows_per_sec=//')
    row "$backend" "raw insert of the service's rows, 1000 events/tx" "$raws ev/s" "" ""

    url=$(fresh_db "$backend")
    start_server "$url" THREATWATCH_GROUP_COMMIT=off
    r=$(wrk_run 64 ingest.lua)
    gcoff=$(field rps "$r")
    row "$backend" "ingestEvent, 64 connections, group commit OFF" "$gcoff ev/s" "$(field p50_ms "$r")" "$(field p99_ms "$r")"
    stop_server

    url=$(fresh_db "$backend")
    start_server "$url"
    for c in 1 16 64; do
      r=$(wrk_run "$c" ingest.lua)
      gc=$(field rps "$r"); gcp99=$(field p99_ms "$r")
      row "$backend" "ingestEvent, $c connection(s), group commit" "$gc ev/s" "$(field p50_ms "$r")" "$gcp99"
    done
    # The same as a sensor sends it, with its API key.
    API_KEY=$(curl -s "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" \
      -d '{"query":"mutation{createApiKey(name:\"bench-sensor\"){key}}"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')
    export API_KEY
    r=$(wrk_run 64 ingest.lua)
    row "$backend" "ingestEvent, 64 connections, X-API-Key" "$(field rps "$r") ev/s" "$(field p50_ms "$r")" "$(field p99_ms "$r")"
    r=$(wrk_run 64 batch.lua)
    row "$backend" "ingestEvents x1000, 64 connections, X-API-Key" "$(awk "BEGIN{printf \"%.0f\", $(field rps "$r")*1000}") ev/s" "$(field p50_ms "$r")" "$(field p99_ms "$r")"
    unset API_KEY
    export REPEAT=0
    r=$(wrk_run 64 repeat.lua)
    plain=$(field rps "$r")
    row "$backend" "ingestEvent, 64 conns, all HIGH, no dedupKey" "$plain ev/s" "$(field p50_ms "$r")" "$(field p99_ms "$r")"
    export REPEAT=1
    r=$(wrk_run 64 repeat.lua)
    row "$backend" "ingestEvent, 64 conns, all HIGH, 90% repeat 1000 keys" "$(field rps "$r") ev/s ($(awk "BEGIN{printf \"%.0f\", 100*$(field rps "$r")/$plain}")%)" "$(field p50_ms "$r")" "$(field p99_ms "$r")"
    for c in 1 16 64; do
      r=$(wrk_run "$c" batch.lua)
      rps=$(field rps "$r")
      batch=$(awk "BEGIN{printf \"%.0f\", $rps*1000}")
      row "$backend" "ingestEvents x1000, $c connection(s)" "$batch ev/s" "$(field p50_ms "$r")" "$(field p99_ms "$r")"
    done
    # The issue's ratios, each within this run (last single and batch runs
    # are the 64-connection ones).
    ratio() { awk "BEGIN{printf \"%.2fx\", $1/$2}"; }
    row "$backend" "(a) ingestEvent 64 conns / raw 1 row per tx" "$(ratio "$gc" "$raw1")" "" "$gcp99"
    row "$backend" "(a) ingestEvent 64 conns / group commit OFF" "$(ratio "$gc" "$gcoff")" "" ""
    row "$backend" "(b) ingestEvents x1000 64 conns / raw same rows" "$(ratio "$batch" "$raws")" "" ""
    row "$backend" "(b) ingestEvents x1000 64 conns / raw bare table" "$(ratio "$batch" "$rawb")" "" ""

  else
    url=$(fresh_db "$backend")
    start_server "$url"
  fi

  # Fill to $ALERTS alerts: batches of 1000 HIGH events from 100 sources,
  # each saying "fill" and one of 1,000 words (w0 … w999).
  have=$(curl -s "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" \
    -d '{"query":"{alertStats{total}}"}' | sed -E 's/.*"total":([0-9]+).*/\1/')
  need=$(( (ALERTS - have + 999) / 1000 ))
  if [ "$need" -gt 0 ]; then
    body=$(python3 -c 'import json;print(json.dumps({"query":"mutation($i:[IngestEventInput!]!){ingestEvents(inputs:$i){event{id}}}","variables":{"i":[{"source":"fill-%d"%(i%100),"eventType":"Intrusion","severity":"HIGH","description":"fill w%d"%i} for i in range(1000)]}}))')
    echo "$body" >"$WORK/fill.json"
    fill_start=$(date +%s.%N)
    seq 1 "$need" | xargs -P 4 -I{} curl -s -o /dev/null "http://127.0.0.1:$PORT/graphql" \
      -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" --data-binary @"$WORK/fill.json"
    row "$backend" "fill: ingestEvents x1000 all HIGH, 4 at a time" \
      "$(awk "BEGIN{printf \"%.0f ev/s\", $need*1000/($(date +%s.%N)-$fill_start)}")" "" ""
  fi
  # Statistics on what was just filled, as autovacuum would gather them in
  # real life (the planner cannot know a word's frequency without them).
  if [ "$backend" = postgres ]; then psql "$PG/threatwatch_bench" -qc "ANALYZE" >/dev/null; fi
  max_id=$(curl -s "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" \
    -d '{"query":"{alerts(first:1){nodes{id}} alertStats{total}}"}')
  total=$(sed -E 's/.*"total":([0-9]+).*/\1/' <<<"$max_id")
  max_id=$(sed -E 's/.*"nodes":\[\{"id":"([0-9]+)".*/\1/' <<<"$max_id")
  # Peak RSS over the ingest runs and the fill, then reset (clear_refs 5)
  # so that the list runs get a peak of their own: serving a 1,000,000-alert
  # database is what the memory target is about.
  pre_peak=$(peak_rss_mib)
  echo 5 >"/proc/$SERVER/clear_refs" 2>/dev/null || true
  for depth in 1 1000 500000; do
    [ "$depth" -ge "$total" ] && continue
    CURSOR=$([ "$depth" = 1 ] && echo "" || cursor_at_depth "$depth" "$max_id") ; export CURSOR
    r=$(wrk_run 16 list.lua)
    row "$backend" "alerts page (10 + events) at depth $depth of $total, 16 conns" "$(field rps "$r") req/s" "$(field p50_ms "$r")" "$(field p99_ms "$r")"
  done
  # Filtered pages beside the unfiltered first page (the depth-1 run
  # above): a time range in the middle of the fill (the creation times of
  # the alerts at depths 600,000 and 400,000) for one source in 100, a page
  # 100,000 alerts into that range, and searches for a word every alert
  # has and for one that 1 alert in 1,000 has. Each query is checked once
  # for errors first: wrk counts any HTTP 200 as a success.
  base_rps=""; base_p50=""
  CURSOR=""; export CURSOR
  r=$(wrk_run 16 list.lua)
  base_rps=$(field rps "$r"); base_p50=$(field p50_ms "$r")
  row "$backend" "alerts page, unfiltered, first page, 16 conns" "$base_rps req/s" "$base_p50" "$(field p99_ms "$r")"
  created_at_depth() { # depth
    curl -s "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" \
      -d "{\"query\":\"{alerts(first:1, after:\\\"$(cursor_at_depth "$1" "$max_id")\\\"){nodes{createdAt}}}\"}" \
      | sed -E 's/.*"createdAt":"([^"]+)".*/\1/'
  }
  filtered() { # label cursor source since until search
    export CURSOR=$2 SOURCE=$3 SINCE=$4 UNTIL=$5 SEARCH=$6
    local check
    check=$(curl -s "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" \
      -d "{\"query\":\"query(\$src:String,\$since:DateTime,\$until:DateTime,\$q:String,\$a:String){alerts(first:10,after:\$a,source:\$src,since:\$since,until:\$until,search:\$q){nodes{id}}}\",\"variables\":{\"src\":$(jsonish "$3"),\"since\":$(jsonish "$4"),\"until\":$(jsonish "$5"),\"q\":$(jsonish "$6"),\"a\":$(jsonish "$2")}}")
    if grep -q '"errors"' <<<"$check" || ! grep -q '"id"' <<<"$check"; then
      row "$backend" "$1: FAILED $check" "" "" ""
      return
    fi
    local r
    r=$(wrk_run 16 list.lua)
    row "$backend" "$1, 16 conns" "$(field rps "$r") req/s" "$(field p50_ms "$r")" "$(field p99_ms "$r")"
    row "$backend" "  cost / unfiltered first page (req/s; p50)" \
      "$(awk "BEGIN{printf \"%.2fx\", $base_rps/$(field rps "$r")}")" \
      "$(awk "BEGIN{printf \"%.2fx\", $(field p50_ms "$r")/$base_p50}")" ""
    unset CURSOR SOURCE SINCE UNTIL SEARCH
  }
  jsonish() { [ -z "$1" ] && echo null || echo "\"$1\""; }
  if [ "$total" -gt 600000 ]; then
    since=$(created_at_depth 600000); until=$(created_at_depth 400000)
    filtered "alerts page, source fill-7 + time range, first page" "" fill-7 "$since" "$until" ""
    filtered "alerts page, source fill-7 + time range, after depth 500,000" \
      "$(cursor_at_depth 500000 "$max_id")" fill-7 "$since" "$until" ""
  fi
  filtered "alerts page, search \"fill\" (every alert), first page" "" "" "" "" fill
  filtered "alerts page, search \"w123\" (1 alert in 1,000), first page" "" "" "" "" w123
  filtered "alerts page, search \"w123 fill\", after depth 500,000" "$(cursor_at_depth 500000 "$max_id")" "" "" "" "w123 fill"
  list_peak=$(peak_rss_mib)
  row "$backend" "server RSS now, after all of the above (MiB)" "$(rss_split)" "" ""
  row "$backend" "server peak RSS while paging the full database" "$list_peak MiB" "" ""
  row "$backend" "server peak RSS, whole run (VmHWM)" "$(( pre_peak > list_peak ? pre_peak : list_peak )) MiB" "" ""
  stop_server
  [ "$backend" = postgres ] && psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS threatwatch_bench WITH (FORCE)" >/dev/null
done

echo
echo "threatwatch benchmark — $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), ${SECONDS_PER_RUN}s per run"
echo
printf '| %-9s | %-52s | %12s | %8s | %8s |\n' backend run rate "p50 ms" "p99 ms"
printf '|%s|%s|%s|%s|%s|\n' ----------- ------------------------------------------------------ -------------- ---------- ----------
printf '%s\n' "${RESULTS[@]}"
