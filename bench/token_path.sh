#!/usr/bin/env bash
# The token path of a cached catalog read through `cinema up`, with the revocation
# check at its default (the host asked at most once a second per instance) and with it
# practically off (asked once a day), in one run: the ratio is what revocation costs.
# Also a forged token (signature check fails) and no token, for scale.
# Usage: bench/token_path.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cinema-target}"
DURATION="${1:-10s}"
ADDR=127.0.0.1:28290
INTERNAL=127.0.0.1:28291
DB_BASE="${CINEMA_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB_NAME=cinema_bench_token
DB_URL="$DB_BASE/$DB_NAME?sslmode=disable"
INDEX_DIR=/var/tmp/cinema-bench-token-index
# CINEMA_BIN: another `cinema` binary to measure (an older build, say); not rebuilt.
CINEMA="${CINEMA_BIN:-$CARGO_TARGET_DIR/release/cinema}"

# shellcheck source=bench/lib.sh
. bench/lib.sh
ensure_wrk
for c in auth catalog; do
  [ -f "build/components/$c.wasm" ] || { echo "build/components/$c.wasm missing: run 'make components'" >&2; exit 1; }
done
build_cinema

echo "preparing database $DB_NAME..."
psql -q "$DB_BASE/postgres" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1
"$CINEMA" migrate --postgres-url "$DB_URL" --clickhouse-database cinema_bench_token >/dev/null
export CINEMA_SIGNING_KEY_ENCRYPTION_KEY
CINEMA_SIGNING_KEY_ENCRYPTION_KEY=$("$CINEMA" keys new-kek)
"$CINEMA" keys rotate --postgres-url "$DB_URL" >/dev/null
"$CINEMA" seed --postgres-url "$DB_URL" --films 1000 >/dev/null
rm -rf "$INDEX_DIR"

pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT
export CINEMA_INTERNAL_API_TOKEN="bench-internal-$$-$RANDOM"

# run_with CHECK_MS: starts the platform with that revocation_check_ms, measures, stops.
run_with() {
  local check_ms=$1 label=$2
  export_component_databases "$DB_URL"
  SPIN_VARIABLE_JWKS="$("$CINEMA" keys jwks --postgres-url "$DB_URL")" \
    SPIN_VARIABLE_INTERNAL_API_URL="http://$INTERNAL" SPIN_VARIABLE_REVOCATION_CHECK_MS="$check_ms" RUST_LOG=warn \
    "$CINEMA" up --from spin.toml --runtime-config-file cinema-runtime-config.toml --listen "$ADDR" --internal-listen "$INTERNAL" \
    --index-dir "$INDEX_DIR" --etl-postgres-url "$DB_URL" --auth-postgres-url "$DB_URL" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    curl -fsS -H "x-cinema-internal-token: $CINEMA_INTERNAL_API_TOKEN" "http://$INTERNAL/search/version" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS -X POST "http://$ADDR/api/v1/auth/signup" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"Bench-pass1"}' >/dev/null 2>&1 || true
  local token
  token=$(curl -fsS -X POST "http://$ADDR/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"Bench-pass1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -fsS -H "Authorization: Bearer $token" "http://$ADDR/api/v1/genres" >/dev/null
  measure "  $label genres, cached: req/s" -t2 -c32 -d"$DURATION" -H "Authorization: Bearer $token" "http://$ADDR/api/v1/genres"
  if [ "$label" = "revocation on " ]; then
    measure "  forged token (401):      req/s" -t2 -c32 -d"$DURATION" -H "Authorization: Bearer ${token%?????}AAAAA" "http://$ADDR/api/v1/genres"
    measure "  no token (401):          req/s" -t2 -c32 -d"$DURATION" "http://$ADDR/api/v1/genres"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

echo "token path through cinema up (wrk -t2 -c32 -d$DURATION):"
# The figure after "req/s" on the line of LABEL.
# (reads all its input: stopping early would break the pipe it sits in)
rate() { awk -v label="$1" '!found && index($0, label) { for (i = 1; i < NF; i++) if ($i == "req/s") { print $(i + 1); found = 1; break } }'; }
on=$(run_with 1000 "revocation on " | tee /dev/stderr | rate "revocation on")
off=$(run_with 86400000 "revocation off" | tee /dev/stderr | rate "revocation off")
python3 -c "import sys; on, off = float(sys.argv[1]), float(sys.argv[2]); print(f'  revocation check costs {100 * (1 - on / off):.1f}% of cached-read throughput (on/off = {on / off:.2f})')" "$on" "$off"
