#!/usr/bin/env bash
# Retention beside ingest, on SQLite (release build; wrk installed if missing).
#
#   bench/retention.sh [--fill S] [--seconds S] [--rounds R] [--steady S]
#
# 1. Ingest while a purge runs: a database is filled with LOW events (no
#    alert, so retention may delete them) for --fill seconds, then copied.
#    Each round ingests for --seconds at 64 connections into one copy with
#    retention off and into another with THREATWATCH_RETENTION=1s, whose
#    passes delete the whole fill (and each second's new events) while
#    wrk runs. Prints rate, p99, p99.9, the slowest request, and how many
#    events of the fill were gone by the end of the run.
# 2. The file under steady ingest with retention on: --steady seconds of
#    LOW events at a fleet's pace (16 connections, each pausing 10 ms before
#    every request: at most 1,600 events/s) with THREATWATCH_RETENTION=20s,
#    the size of the database file and its WAL, and of the word index's
#    file and its WAL, every 10 s. Once retention
#    deletes as much as arrives, SQLite reuses the freed pages and the file
#    stops growing. (A pass holds the writer at most a tenth of the time,
#    so it deletes a few thousand events a second: a flood at the service's
#    full ingest rate outgrows it, and is purged once the flood ends.)
set -euo pipefail
cd "$(dirname "$0")/.."
FILL=15 SECS=10 ROUNDS=3 STEADY=120
while [ $# -gt 0 ]; do
  case "$1" in
    --fill) FILL=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --steady) STEADY=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk)) >/dev/null
[ -n "${TW_BIN:-}" ] || cargo build --release --quiet --bin threatwatch
BIN=${TW_BIN:-target/release/threatwatch}
work=$(mktemp -d); pid=""
stop() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
trap 'stop; rm -rf "$work"' EXIT
. bench/ports.sh
PORT=$(free_port)
URL=http://127.0.0.1:$PORT

start() {  # start DB_FILE [ENV=VALUE...]
  local db=$1; shift
  env DATABASE_URL="sqlite://$db" THREATWATCH_BIND=127.0.0.1:$PORT THREATWATCH_ADMIN_PASSWORD='Bench-Pass-123!' \
    THREATWATCH_RATE_ANON=off THREATWATCH_RATE_USER=off THREATWATCH_RATE_SENSOR=off THREATWATCH_ACCESS_TTL=1h \
    THREATWATCH_BCRYPT_COST=4 RUST_LOG=warn "$@" "$BIN" serve >>"$work/log" 2>&1 & pid=$!
  for _ in $(seq 100); do curl -fs "$URL/healthz" >/dev/null && break; sleep 0.2; done
  TOKEN=$(curl -fs "$URL/graphql" -H 'Content-Type: application/json' \
    -d '{"query":"mutation{ login(username:\"admin\", password:\"Bench-Pass-123!\"){ accessToken } }"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["accessToken"])')
  export TOKEN
}
purged() {  # events the retention passes logged so far
  curl -fs "$URL/graphql" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \
    -d '{"query":"{ auditLog(action: RETENTION_PURGED, first: 100) { nodes { detail } } }"}' |
    python3 -c 'import json,sys; print(sum(json.loads(n["detail"])["events"] for n in json.load(sys.stdin)["data"]["auditLog"]["nodes"]))'
}
ingest() { wrk -t2 -c64 -d"$1"s --latency -s bench/low.lua "$URL/graphql" | grep RESULT; }

echo "# filling: LOW events for ${FILL}s"
start "$work/fill.db"
ingest "$FILL" >/dev/null
stop
# Rows of the fill, counted in the file (the server stopped): a pass
# records itself in the audit log only when it ends, which a purge of the
# whole fill may not do within a run.
fill_rows() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM events WHERE id <= ?", (int(sys.argv[2]),)).fetchone()[0])' "$1" "$2"; }
fill_max=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT max(id) FROM events").fetchone()[0])' "$work/fill.db")
fill_n=$(fill_rows "$work/fill.db" "$fill_max")
echo "# fill: $(du -m "$work/fill.db" | cut -f1) MiB, $fill_n events"
for r in $(seq "$ROUNDS"); do
  for mode in off on; do
    # The fill's word index file comes along: without it each run would
    # spend itself rebuilding the index of the whole fill.
    rm -f "$work/run.db"*; cp "$work/fill.db" "$work/run.db"; cp "$work/fill.db-words" "$work/run.db-words"
    if [ "$mode" = on ]; then start "$work/run.db" THREATWATCH_RETENTION=1s; else start "$work/run.db"; fi
    out=$(ingest "$SECS")
    stop
    echo "round $r retention=$mode: $out fill_events_purged=$((fill_n - $(fill_rows "$work/run.db" "$fill_max")))"
  done
done

echo "# steady: LOW events for ${STEADY}s at 16 connections, 10 ms apart, with THREATWATCH_RETENTION=20s"
rm -f "$work/steady.db"*
start "$work/steady.db" THREATWATCH_RETENTION=20s
DELAY_MS=10 wrk -t2 -c16 -d"$STEADY"s -s bench/low.lua "$URL/graphql" > "$work/steady.out" &
w=$!
t=0
while kill -0 "$w" 2>/dev/null; do
  sleep 10; t=$((t + 10))
  db=$(stat -c %s "$work/steady.db"); wal=$(stat -c %s "$work/steady.db-wal" 2>/dev/null || echo 0)
  words=$(stat -c %s "$work/steady.db-words" 2>/dev/null || echo 0)
  words_wal=$(stat -c %s "$work/steady.db-words-wal" 2>/dev/null || echo 0)
  echo "t=${t}s db_MiB=$((db / 1048576)) wal_MiB=$((wal / 1048576)) words_MiB=$((words / 1048576)) words_wal_MiB=$((words_wal / 1048576))"
done
grep RESULT "$work/steady.out" || true
echo "events purged: $(purged)"
stop
