#!/usr/bin/env bash
# The load report: `cinema up` with every service on loopback and 100k seeded films,
# driven by a mix of catalog lists and film pages, searches, UGC heartbeats, token
# refreshes and logins (bench/native-hello/src/bin/load_mix.rs). First at full speed
# (the peak), then a soak at half the peak rate. Writes bench/results/load.{md,json}
# and bench/results/soak.{md,json}: req/s, p50/p95/p99 per route, errors, host RSS.
# Usage: bench/load.sh  (env: FILMS=100000 LOAD_SECONDS=60 SOAK_SECONDS=600 WORKERS=32)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cinema-target}"
FILMS="${FILMS:-100000}"
LOAD_SECONDS="${LOAD_SECONDS:-60}"
SOAK_SECONDS="${SOAK_SECONDS:-600}"
WORKERS="${WORKERS:-32}"
ADDR=127.0.0.1:28390
INTERNAL=127.0.0.1:28391
DB_BASE="${CINEMA_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB_NAME=cinema_bench_load
DB_URL="$DB_BASE/$DB_NAME?sslmode=disable"
CH_URL="${CINEMA_CLICKHOUSE_URL:-http://127.0.0.1:8123}"
CH_DB=cinema_bench_load
TOPICS="bench.load.$(date +%s)"
INDEX_DIR=/var/tmp/cinema-bench-load-index
SPOOL=/var/tmp/cinema-bench-load-spool
RESULTS=bench/results
CINEMA="$CARGO_TARGET_DIR/release/cinema"
MIX="$CARGO_TARGET_DIR/release/load_mix"

# shellcheck source=bench/lib.sh
. bench/lib.sh
for c in auth catalog ugc admin; do
  [ -f "build/components/$c.wasm" ] || { echo "build/components/$c.wasm missing: run 'make components'" >&2; exit 1; }
done
echo "building release binaries..."
cargo build --release -q -p cinema-host -p cinema-bench-native-hello

echo "preparing $DB_NAME (Postgres, $FILMS films) and $CH_DB (ClickHouse)..."
psql -q "$DB_BASE/postgres" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1
curl -fsS "$CH_URL" --data-binary "DROP DATABASE IF EXISTS $CH_DB" >/dev/null
"$CINEMA" migrate --postgres-url "$DB_URL" --clickhouse-url "$CH_URL" --clickhouse-database "$CH_DB" >/dev/null
"$CINEMA" keys rotate --postgres-url "$DB_URL" >/dev/null
"$CINEMA" seed --postgres-url "$DB_URL" --films "$FILMS"
rm -rf "$INDEX_DIR" "$SPOOL"
"$CINEMA" reindex --postgres-url "$DB_URL" --index-dir "$INDEX_DIR"

pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT
mkdir -p "$RESULTS"
start_platform "$DB_URL" "$CH_URL" "$CH_DB" "$TOPICS" "$INDEX_DIR" "$SPOOL" "$ADDR" "$INTERNAL" "$RESULTS/.host.log"

context="$(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $FILMS films"
echo "peak: $LOAD_SECONDS s, $WORKERS workers as fast as answered..."
"$MIX" "http://$ADDR" --duration "$LOAD_SECONDS" --concurrency "$WORKERS" --host-pid "$pid" \
  --title "Peak: mixed load ($context)" --out "$RESULTS/load"
peak=$(python3 -c "import json; print(json.load(open('$RESULTS/load.json'))['total']['req_per_s'])")
half=$(python3 -c "print(round($peak / 2))")
echo "soak: $SOAK_SECONDS s at half the peak, $half req/s..."
"$MIX" "http://$ADDR" --duration "$SOAK_SECONDS" --concurrency "$WORKERS" --rate "$half" --host-pid "$pid" \
  --title "Soak: half the peak for $SOAK_SECONDS s ($context)" --out "$RESULTS/soak"
rm -f "$RESULTS/.host.log"
