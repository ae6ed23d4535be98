#!/usr/bin/env bash
# UGC intake benchmark through `cinema up`: heartbeats accepted per second as single
# events and as batches of 100 (token check, validation and idempotency in the ugc
# component, then Kafka acks=all), the loader's rate into ClickHouse, and the
# end-to-end lag from acceptance to ClickHouse (p50/p99, from `load_lag_ms`), and the
# write-to-read lag of the Postgres read models.
# Usage: bench/ugc.sh [duration, default 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cinema-target}"
DURATION="${1:-10s}"
ADDR=127.0.0.1:28490
INTERNAL=127.0.0.1:28491
DB_BASE="${CINEMA_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB_NAME=cinema_bench_ugc
DB_URL="$DB_BASE/$DB_NAME?sslmode=disable"
CH_URL="${CINEMA_CLICKHOUSE_URL:-http://127.0.0.1:8123}"
CH_DB=cinema_bench_ugc
TOPIC="ugc.bench.$(date +%s)"
SPOOL=/var/tmp/cinema-bench-spool
CINEMA="$CARGO_TARGET_DIR/release/cinema"

# shellcheck source=bench/lib.sh
. bench/lib.sh
ensure_wrk
for c in auth ugc; do
  [ -f "build/components/$c.wasm" ] || { echo "build/components/$c.wasm missing: run 'make components'" >&2; exit 1; }
done
echo "building release binaries..."
cargo build --release -q -p cinema-host -p cinema-bench-native-hello

echo "preparing $DB_NAME (Postgres) and $CH_DB (ClickHouse)..."
psql -q "$DB_BASE/postgres" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1
curl -fsS "$CH_URL" --data-binary "DROP DATABASE IF EXISTS $CH_DB" >/dev/null
"$CINEMA" migrate --postgres-url "$DB_URL" --clickhouse-url "$CH_URL" --clickhouse-database "$CH_DB" >/dev/null
"$CINEMA" keys rotate --postgres-url "$DB_URL" >/dev/null
rm -rf "$SPOOL"

clickhouse() { curl -fsS "$CH_URL/?database=$CH_DB" --data-binary "$1"; }

pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT
export_component_databases "$DB_URL"
SPIN_VARIABLE_JWKS="$("$CINEMA" keys jwks --postgres-url "$DB_URL")" \
  SPIN_VARIABLE_INTERNAL_API_URL="http://$INTERNAL" RUST_LOG=warn \
  "$CINEMA" up --from spin.toml --listen "$ADDR" --internal-listen "$INTERNAL" \
  --kafka-brokers 127.0.0.1:9092 --ugc-topic "$TOPIC" --ugc-loader-group "bench-$TOPIC" \
  --ugc-postgres-url "$DB_URL" --ugc-read-model-group "bench-read-model-$TOPIC" \
  --spool-dir "$SPOOL" --clickhouse-url "$CH_URL" --clickhouse-database "$CH_DB" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 300); do curl -fsS "http://$INTERNAL/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -X POST "http://$ADDR/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"Bench-pass1"}' >/dev/null
token=$(curl -fsS -X POST "http://$ADDR/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"Bench-pass1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
film=30000000-0000-4000-8000-000000000001
single="{\"type\":\"view_progress\",\"film_id\":\"$film\",\"position_s\":60,\"duration_s\":5400}"
batch=$(python3 -c "import json; print(json.dumps([json.loads('$single')] * 100))")
curl -fsS -o /dev/null -X POST "http://$ADDR/api/v1/ugc/events" -H "Authorization: Bearer $token" \
  -H 'content-type: application/json' -d "$single"
# Measured first, while the consumers are idle: the lag a user sees in normal operation.
echo "read models: a heartbeat's position readable through GET me/progress (idle platform)..."
"$CARGO_TARGET_DIR/release/ugc_read_lag" "http://$ADDR" "$token" 50
lua=$(mktemp --suffix=.lua)

printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "$(python3 -c "import json,sys; print(json.dumps(sys.argv[1]))" "$single")" >"$lua"
echo "single heartbeats (wrk -t2 -c32 -d$DURATION):"
single_out=$(measure "  requests/s" -t2 -c32 -d"$DURATION" -s "$lua" -H "Authorization: Bearer $token" "http://$ADDR/api/v1/ugc/events")
echo "$single_out"

printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "$(python3 -c "import json,sys; print(json.dumps(sys.argv[1]))" "$batch")" >"$lua"
echo "batches of 100 heartbeats (wrk -t2 -c32 -d$DURATION):"
batch_out=$(measure "  requests/s" -t2 -c32 -d"$DURATION" -s "$lua" -H "Authorization: Bearer $token" "http://$ADDR/api/v1/ugc/events")
echo "$batch_out"
awk '{printf "  events/s %.0f\n", $2 * 100}' <<<"$batch_out"
rm -f "$lua"

echo "end to end: waiting for ClickHouse to hold every accepted event..."
last=-1
while :; do
  rows=$(clickhouse "SELECT count() FROM ugc_events")
  [ "$rows" = "$last" ] && break
  last=$rows; sleep 2
done
echo "  rows in ClickHouse: $rows (distinct events: $(clickhouse "SELECT uniqExact(event_id) FROM ugc_events"))"
echo "  accept-to-ClickHouse lag: $(clickhouse "SELECT concat('p50 ', toString(quantile(0.5)(load_lag_ms)), ' ms  p99 ', toString(quantile(0.99)(load_lag_ms)), ' ms') FROM ugc_events")"
ps -o rss= -p "$pid" | awk '{printf "  host RSS: %.0f MiB\n", $1/1024}'
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

echo "loader alone: a new consumer group re-reads the topic into a fresh database..."
curl -fsS "$CH_URL" --data-binary "DROP DATABASE IF EXISTS ${CH_DB}_reload" >/dev/null
"$CINEMA" migrate --postgres-url "$DB_URL" --clickhouse-url "$CH_URL" --clickhouse-database "${CH_DB}_reload" >/dev/null
export_component_databases "$DB_URL"
RUST_LOG=warn \
  "$CINEMA" up --from spin.toml --listen "$ADDR" --internal-listen "$INTERNAL" \
  --kafka-brokers 127.0.0.1:9092 --ugc-topic "$TOPIC" --ugc-loader-group "reload-$TOPIC" \
  --spool-dir "$SPOOL" --clickhouse-url "$CH_URL" --clickhouse-database "${CH_DB}_reload" >/dev/null 2>&1 &
pid=$!
first="" 
while :; do
  got=$(curl -fsS "$CH_URL/?database=${CH_DB}_reload" --data-binary "SELECT count() FROM ugc_events" 2>/dev/null || echo 0)
  [ -z "$first" ] && [ "$got" -gt 0 ] && first=$(date +%s.%N)
  [ "$got" -ge "$rows" ] && break
  sleep 0.2
done
done_at=$(date +%s.%N)
awk -v r="$rows" -v a="$first" -v b="$done_at" 'BEGIN { printf "  loader events/s (first row to last, %.1f s): %.0f\n", b - a, r / (b - a) }'
