#!/usr/bin/env bash
# Auth benchmark: logins/s through `cinema up` (argon2id inside the component, sessions
# and history in Postgres) against the argon2id cost measured alone on the same machine,
# and access-token verification inside a component (cinema-edge, JWKS cached in
# key-value), as every other service does it. Serves the auth component plus the
# `guarded` test fixture (host/tests/fixtures/platform-guarded.spin.toml).
# Usage: bench/auth.sh [duration, default 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cinema-target}"
DURATION="${1:-10s}"
ADDR=127.0.0.1:28090
DB_BASE="${CINEMA_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB_NAME=cinema_bench_auth
DB_URL="$DB_BASE/$DB_NAME?sslmode=disable"
CINEMA="$CARGO_TARGET_DIR/release/cinema"

# shellcheck source=bench/lib.sh
. bench/lib.sh
ensure_wrk
[ -f build/components/auth.wasm ] || { echo "build/components/auth.wasm missing: run 'make components'" >&2; exit 1; }
echo "building release binaries..."
cargo build --release -q -p cinema-host -p cinema-bench-native-hello

echo "preparing database $DB_NAME..."
psql -q "$DB_BASE/postgres" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1
"$CINEMA" migrate --postgres-url "$DB_URL" --clickhouse-database cinema_bench_auth >/dev/null
"$CINEMA" keys rotate --postgres-url "$DB_URL" >/dev/null


pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT
[ -f build/components/fixture_guarded.wasm ] || { echo "build/components/fixture_guarded.wasm missing: run 'make components'" >&2; exit 1; }
export_component_databases "$DB_URL"
SPIN_VARIABLE_JWKS_URL="http://$ADDR/.well-known/jwks.json" RUST_LOG=warn \
  "$CINEMA" up --from host/tests/fixtures/platform-guarded.spin.toml --listen "$ADDR" \
  --internal-listen 127.0.0.1:28091 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fsS "http://$ADDR/.well-known/jwks.json" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -X POST "http://$ADDR/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"Bench-pass1"}' >/dev/null

echo "argon2id alone (native, 2 threads):"
"$CARGO_TARGET_DIR/release/argon2_cost" 2 5 | tee /tmp/cinema-argon2.txt
alone=$(grep -oE '[0-9.]+ verifications/s' /tmp/cinema-argon2.txt | cut -d' ' -f1)

script=$(mktemp --suffix=.lua)
cat >"$script" <<'LUA'
wrk.method = "POST"
wrk.body = '{"email":"bench@example.com","password":"Bench-pass1"}'
wrk.headers["Content-Type"] = "application/json"
LUA
echo "logins through cinema up (wrk -t2 -c4 -d$DURATION):"
logins=$(measure logins/s -t2 -c4 -d"$DURATION" -s "$script" "http://$ADDR/api/v1/auth/login")
rm -f "$script"
echo "$logins"
rps=$(awk '{print $2; exit}' <<<"$logins")
awk -v l="$rps" -v a="$alone" 'BEGIN { printf "logins/s over argon2 verifications/s alone: %.2f\n", l/a }'

token=$(curl -fsS -X POST "http://$ADDR/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"Bench-pass1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -fsS -H "authorization: Bearer $token" "http://$ADDR/guarded/whoami" >/dev/null
echo "token verification inside a component (wrk -t2 -c32 -d$DURATION, GET /guarded/whoami):"
measure "verified requests/s" -t2 -c32 -d"$DURATION" -H "Authorization: Bearer $token" "http://$ADDR/guarded/whoami"
