#!/usr/bin/env bash
# Webhooks beside ingest: durable single-event ingest (every event HIGH, so
# every event raises an alert) with no webhook and with N webhooks to a fast
# local receiver that verifies every signature, runs alternating, on SQLite.
#
#   bench/webhooks.sh [--hooks N] [--rounds R] [--seconds S] [--conns C] [--drain-max S] [--rate R]
#
# For each run: req/s, p99, the deliveries still owed (changes queued in
# the outbox times their endpoints, plus PENDING delivery rows) sampled
# every second during the load (the largest) and when it stops, how long
# the worker then took to drain them, and what the receiver got (distinct
# webhook-ids; any bad signature is an error). --rate paces the load to
# about R requests/s in all (wrk's per-request delay) instead of as fast as
# the server answers: a fleet's pace, to show whether the worker keeps up
# while ingest is not saturating the machine. Builds in release
# mode unless TW_BIN and TW_RECEIVER name prebuilt binaries; installs wrk
# when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

HOOKS=3 ROUNDS=3 SECS=10 CONNS=64 DRAIN_MAX=300 RATE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE=$2; shift 2 ;;
    --drain-max) DRAIN_MAX=$2; shift 2 ;;
    --hooks) HOOKS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk)) >/dev/null

# TW_BIN / TW_RECEIVER: prebuilt binaries (to compare builds); else built here.
if [ -z "${TW_BIN:-}" ] || [ -z "${TW_RECEIVER:-}" ]; then
  cargo build --release --quiet --bin threatwatch --example webhook_receiver
fi
BIN=${TW_BIN:-target/release/threatwatch}
RECEIVER=${TW_RECEIVER:-target/release/examples/webhook_receiver}
WORK=$(mktemp -d)
. bench/ports.sh
PORT=$(free_port) RPORT=$(free_port) SERVER="" RECV=""
while [ "$RPORT" = "$PORT" ]; do RPORT=$(free_port); done
stop() { for p in $SERVER $RECV; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; SERVER="" RECV=""; }
trap 'stop; rm -rf "$WORK"' EXIT
PASSWORD=bench-password-1
gql() { curl -s "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" -d "$1"; }
# Deliveries owed: each queued change once per endpoint it names, plus the
# delivery rows not yet sent.
owed() {
  sql "SELECT (SELECT COUNT(*) FROM webhook_deliveries WHERE status='PENDING')
        + (SELECT COALESCE(SUM(length(webhooks) - length(replace(webhooks, ',', '')) + 1), 0) FROM webhook_outbox)"
}
sql() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1], timeout=30).execute(sys.argv[2]).fetchone()[0])' "$WORK/tw.db" "$1"; }

cat >"$WORK/ingest.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"query":"mutation($i: IngestEventInput!){ ingestEvent(input:$i){ event { id } alert { id } } }","variables":{"i":{"source":"Firewall-1","eventType":"Intrusion","severity":"HIGH","description":"port scan from 203.0.113.9"}}}'
local pause = tonumber(os.getenv("PAUSE_MS") or "0")
if pause > 0 then
  delay = function() return pause end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p99_ms=%.2f errors=%d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(99) / 1000, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
LUA

run() { # hooks
  local hooks=$1 secrets=()
  rm -f "$WORK"/tw.db*
  env DATABASE_URL="sqlite://$WORK/tw.db" THREATWATCH_BIND=127.0.0.1:$PORT THREATWATCH_ADMIN_PASSWORD=$PASSWORD \
    THREATWATCH_RATE_ANON=off THREATWATCH_RATE_USER=off THREATWATCH_RATE_SENSOR=off THREATWATCH_BCRYPT_COST=4 \
    THREATWATCH_ACCESS_TTL=2h THREATWATCH_WEBHOOK_ALLOW_NETS=127.0.0.0/8 RUST_LOG=warn "$BIN" serve >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
  TOKEN=$(curl -s "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' \
    -d "{\"query\":\"mutation{login(username:\\\"admin\\\",password:\\\"$PASSWORD\\\"){accessToken}}\"}" \
    | sed -E 's/.*"accessToken":"([^"]+)".*/\1/')
  for i in $(seq 1 "$hooks"); do
    secrets+=("$(gql "{\"query\":\"mutation{createWebhook(input:{name:\\\"hook-$i\\\",url:\\\"http://127.0.0.1:$RPORT/h$i\\\",triggers:[ALERT_RAISED,ALERT_REPEATED]}){secret}}\"}" \
      | sed -E 's/.*"secret":"([^"]+)".*/\1/')")
  done
  "$RECEIVER" "127.0.0.1:$RPORT" "${secrets[@]}" 2>/dev/null &
  RECV=$!
  sleep 0.3
  local pause=0
  [ "$RATE" -gt 0 ] && pause=$((CONNS * 1000 / RATE))
  PAUSE_MS=$pause TOKEN=$TOKEN wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$WORK/ingest.lua" \
    "http://127.0.0.1:$PORT/graphql" >"$WORK/wrk.out" &
  local load=$! peak=0 now
  if [ "$hooks" -gt 0 ]; then
    sleep 1
    while kill -0 "$load" 2>/dev/null; do
      now=$(owed); [ "$now" -gt "$peak" ] && peak=$now
      sleep 1
    done
  fi
  wait "$load"
  local line; line="hooks=$hooks $(grep RESULT "$WORK/wrk.out")"
  if [ "$hooks" -gt 0 ]; then
    local at_end; at_end=$(owed)
    local t0; t0=$(date +%s.%N) pending=$at_end
    while [ "$pending" -gt 0 ] && [ "$(echo "$(date +%s.%N) - $t0 < $DRAIN_MAX" | bc)" = 1 ]; do
      sleep 0.5; pending=$(owed)
    done
    local drain; drain=$(echo "$(date +%s.%N) - $t0" | bc)
    local total; total=$(sql "SELECT COUNT(*) FROM webhook_deliveries")
    line="$line owed_peak=$peak owed_at_end=$at_end drain_s=$(printf %.1f "$drain") owed_after=$pending rows=$total receiver=$(curl -s "http://127.0.0.1:$RPORT/count")"
  fi
  stop
  echo "$line"
}

echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) conns=$CONNS seconds=$SECS hooks=$HOOKS rate=$([ "$RATE" -gt 0 ] && echo "$RATE" || echo max)"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: $(run 0)"
  echo "round $r: $(run "$HOOKS")"
done
