#!/usr/bin/env bash
# Bad input at volume: schemathesis (property-based requests generated from the
# OpenAPI documents of auth, catalog and ugc) against `cinema up` with every service,
# its own database and 500 seeded films, as an admin (so every route is reachable).
# Fails on any 5xx answer, or if the host dies; prints how many requests were tried.
# Usage: scripts/fuzz.sh [examples per operation, default 100]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cinema-target}"
EXAMPLES="${1:-100}"
ADDR=127.0.0.1:28590
INTERNAL=127.0.0.1:28591
DB_BASE="${CINEMA_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB_NAME=cinema_fuzz
DB_URL="$DB_BASE/$DB_NAME?sslmode=disable"
CH_URL="${CINEMA_CLICKHOUSE_URL:-http://127.0.0.1:8123}"
TOPICS="fuzz.$(date +%s)"
WORK=/var/tmp/cinema-fuzz
TOOLS="${CINEMA_TOOLS_DIR:-/var/tmp/cinema-tools}"
VENV="$TOOLS/schemathesis-3.39.16"
ST="$VENV/bin/st"
# CINEMA_BIN: a `cinema` already built from this tree (`make test` passes the one its
# test build just made, which saves a second build of the host with other features).
CINEMA="${CINEMA_BIN:-$CARGO_TARGET_DIR/release/cinema}"

if [ ! -x "$ST" ]; then
  echo "installing schemathesis 3.39.16 into $VENV..."
  python3 -m venv "$VENV"
  # Hypothesis after 6.131.14 changed an internal schemathesis 3.39 relies on.
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==3.39.16" "hypothesis==6.131.14"
fi
# shellcheck source=bench/lib.sh
. bench/lib.sh
for c in auth catalog ugc; do
  [ -f "build/components/$c.wasm" ] || { echo "build/components/$c.wasm missing: run 'make components'" >&2; exit 1; }
done
if [ -z "${CINEMA_BIN:-}" ]; then
  echo "building the release cinema binary..."
  cargo build --release -q -p cinema-host
fi

echo "preparing $DB_NAME with 500 films..."
psql -q "$DB_BASE/postgres" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1
curl -fsS "$CH_URL" --data-binary "DROP DATABASE IF EXISTS $DB_NAME" >/dev/null
rm -rf "$WORK" && mkdir -p "$WORK"
"$CINEMA" migrate --postgres-url "$DB_URL" --clickhouse-url "$CH_URL" --clickhouse-database "$DB_NAME" >/dev/null
"$CINEMA" keys rotate --postgres-url "$DB_URL" >/dev/null
"$CINEMA" seed --postgres-url "$DB_URL" --films 500 >/dev/null
"$CINEMA" reindex --postgres-url "$DB_URL" --index-dir "$WORK/index" >/dev/null
CINEMA_ADMIN_PASSWORD='Fuzz-admin-pass1' "$CINEMA" users create-admin --postgres-url "$DB_URL" --email fuzz@example.com >/dev/null

pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT
start_platform "$DB_URL" "$CH_URL" "$DB_NAME" "$TOPICS" "$WORK/index" "$WORK/spool" "$ADDR" "$INTERNAL" "$WORK/host.log"

login() {
  curl -fsS -X POST "http://$ADDR/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"fuzz@example.com","password":"Fuzz-admin-pass1"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

total=0
failed=0
# One token, taken before the fuzzer gets to auth: it may well log the admin out
# everywhere and trip the login throttle (every request comes from one IP). Auth goes
# last for the same reason.
token=$(login)
for doc in /api/v1/openapi.json /api/v1/ugc/openapi.json /api/v1/auth/openapi.json; do
  echo "fuzzing $doc ($EXAMPLES examples per operation)..."
  set +e
  "$ST" run "http://$ADDR$doc" --base-url "http://$ADDR" --checks not_a_server_error \
    --hypothesis-max-examples "$EXAMPLES" --hypothesis-seed 20261126 --workers 2 \
    -H "Authorization: Bearer $token" --no-color >"$WORK/st.log" 2>&1
  status=$?
  set -e
  tail -n 25 "$WORK/st.log" | grep -aE "passed|failed|errored|Performed|not_a_server_error" | sed 's/^/  /'
  cases=$(grep -aoE "not_a_server_error +[0-9]+ / [0-9]+" "$WORK/st.log" | awk '{print $4}' | tail -1)
  total=$((total + ${cases:-0}))
  [ "$status" -eq 0 ] || { failed=1; echo "  schemathesis found failures; full output in $WORK/st.log" >&2; cp "$WORK/st.log" "$WORK/st-$(basename "$(dirname "$doc")").log"; }
  kill -0 "$pid" 2>/dev/null || { echo "the host died; see $WORK/host.log" >&2; exit 1; }
done
echo "fuzz: $total requests checked, host alive, $([ "$failed" -eq 0 ] && echo 'no 5xx' || echo 'FAILURES (see above)')"
exit "$failed"
