#!/usr/bin/env bash
# Catalog benchmark on 100k seeded films (override: bench/catalog.sh FILMS DURATION):
# full reindex time; search through `cinema up` (catalog component, token check, KV
# cache) and straight on the host's search API (no cache); cached film detail;
# change-to-searchable latency of the ETL. HOST_LOG=FILE keeps the host's log (with
# RUST_LOG=info, say, to see the ETL's steps).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cinema-target}"
FILMS="${1:-100000}"
DURATION="${2:-10s}"
ADDR=127.0.0.1:28190
INTERNAL=127.0.0.1:28191
DB_BASE="${CINEMA_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB_NAME=cinema_bench_catalog
DB_URL="$DB_BASE/$DB_NAME?sslmode=disable"
INDEX_DIR=/var/tmp/cinema-bench-index
CINEMA="$CARGO_TARGET_DIR/release/cinema"

# shellcheck source=bench/lib.sh
. bench/lib.sh
ensure_wrk
for c in auth catalog; do
  [ -f "build/components/$c.wasm" ] || { echo "build/components/$c.wasm missing: run 'make components'" >&2; exit 1; }
done
echo "building release binaries..."
cargo build --release -q -p cinema-host -p cinema-bench-native-hello

echo "preparing database $DB_NAME with $FILMS films..."
psql -q "$DB_BASE/postgres" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1
"$CINEMA" migrate --postgres-url "$DB_URL" --clickhouse-database cinema_bench_catalog >/dev/null
"$CINEMA" keys rotate --postgres-url "$DB_URL" >/dev/null
"$CINEMA" seed --postgres-url "$DB_URL" --films "$FILMS"
rm -rf "$INDEX_DIR"
echo "full reindex:"
/usr/bin/time -f "  peak RSS %M KiB" "$CINEMA" reindex --postgres-url "$DB_URL" --index-dir "$INDEX_DIR"
du -sh "$INDEX_DIR" | awk '{print "  index size " $1}'


pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT
# The internal API's credential, so this script may query it directly.
export CINEMA_INTERNAL_API_TOKEN="bench-internal-$$-$RANDOM"
export_component_databases "$DB_URL"
SPIN_VARIABLE_JWKS="$("$CINEMA" keys jwks --postgres-url "$DB_URL")" \
  SPIN_VARIABLE_INTERNAL_API_URL="http://$INTERNAL" RUST_LOG="${RUST_LOG:-warn}" \
  "$CINEMA" up --from spin.toml --runtime-config-file cinema-runtime-config.toml --listen "$ADDR" --internal-listen "$INTERNAL" \
  --index-dir "$INDEX_DIR" --etl-postgres-url "$DB_URL" >"${HOST_LOG:-/dev/null}" 2>&1 &
pid=$!
for _ in $(seq 1 300); do curl -fsS -H "x-cinema-internal-token: $CINEMA_INTERNAL_API_TOKEN" "http://$INTERNAL/search/version" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -X POST "http://$ADDR/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"Bench-pass1"}' >/dev/null
token=$(curl -fsS -X POST "http://$ADDR/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"Bench-pass1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

# Queries: words of seeded titles, whole, inflected, misspelled and typed halfway.
queries=$(mktemp)
psql -qAt "$DB_URL" -c "SELECT split_part(title, ' ', 1) FROM content.film ORDER BY md5(id::text) LIMIT 400" \
  | python3 -c '
import sys, urllib.parse
for i, w in enumerate(l.strip() for l in sys.stdin):
    if len(w) < 3: continue
    variant = [w, w[: max(3, len(w) // 2)], w[:-1] + "ы" if i % 5 == 3 else w, w[1:2] + w[0:1] + w[2:] if i % 5 == 4 else w][i % 4]
    print(urllib.parse.quote(variant))' >"$queries"
lua=$(mktemp --suffix=.lua)
{
  echo "local queries = {}"
  while read -r q; do echo "queries[#queries + 1] = \"$q\""; done <"$queries"
  cat <<LUA
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", PREFIX .. queries[(i % #queries) + 1])
end
LUA
} >"$lua"
echo "$(wc -l <"$queries") distinct search queries"

echo "search, host search API, no cache, as the catalog asks (facets=none) (wrk -t2 -c32 -d$DURATION):"
sed "s|PREFIX|\"/search/films?facets=none\&page_size=20\&query=\"|" "$lua" >"$lua.internal.lua"
measure "  search req/s" -t2 -c32 -d"$DURATION" -s "$lua.internal.lua" -H "x-cinema-internal-token: $CINEMA_INTERNAL_API_TOKEN" "http://$INTERNAL"
echo "search through cinema up: token check, catalog component, KV cache (wrk -t2 -c32 -d$DURATION):"
sed "s|PREFIX|\"/api/v1/films/search?page_size=20\&query=\"|" "$lua" >"$lua.public.lua"
measure "  search req/s" -t2 -c32 -d"$DURATION" -s "$lua.public.lua" -H "Authorization: Bearer $token" "http://$ADDR"

film=$(psql -qAt "$DB_URL" -c "SELECT id FROM content.film WHERE access = 'free' ORDER BY rating DESC NULLS LAST LIMIT 1")
curl -fsS -H "Authorization: Bearer $token" "http://$ADDR/api/v1/films/$film" >/dev/null
echo "film detail, cached (wrk -t2 -c32 -d$DURATION):"
measure "  detail req/s" -t2 -c32 -d"$DURATION" -H "Authorization: Bearer $token" "http://$ADDR/api/v1/films/$film"
echo "film list, cached (wrk -t2 -c32 -d$DURATION):"
measure "  list req/s" -t2 -c32 -d"$DURATION" -H "Authorization: Bearer $token" "http://$ADDR/api/v1/films?sort=-imdb_rating&page_size=50"

echo "ETL:"
"$CARGO_TARGET_DIR/release/etl_latency" "$DB_URL" "http://$INTERNAL" 50 | sed 's/^/  /'
"$CARGO_TARGET_DIR/release/etl_latency" "$DB_URL" "http://$INTERNAL" 100 --during-reindex | sed 's/^/  /'
ps -o rss= -p "$pid" | awk '{printf "  host RSS after the run: %.0f MiB\n", $1/1024}'
rm -f "$queries" "$lua" "$lua.internal.lua" "$lua.public.lua"
