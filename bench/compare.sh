#!/usr/bin/env bash
# The platform side by side with the FastAPI stack it replaces (../shared/peers), on the
# same rows, with the same wrk scripts, in one run: the catalog reads with the answer
# cache warm on both sides, then the searches with no answer cache on either side (the
# peer's Postgres full-text search against the host's search API). Prints one table with
# req/s, p99 and the ratio per route.
#
#   bench/compare.sh [DURATION] [CONNECTIONS]        (defaults 10s, 32)
#   ROUTES="films_page film_detail" limits the routes (film_detail: 1,000 films, cached;
#   film_detail_any: any of the films, mostly cache misses on both sides;
#   search_uncached, list_uncached: the peer's films_search and films_page with its cache
#   off, against the host's /search/films; list_mix, facets: the host alone, lists with
#   any sort, filter and page, and a search's genre facets; ugc_intake: the peer's
#   ugc_events script, batches of 100 heartbeats, 20 users' tokens, against the peer's
#   FastAPI + aiokafka intake and `cinema up` with its whole UGC pipeline (Kafka acks=all,
#   loader and read model running); ugc_loader (after ugc_intake): events/s of each
#   side's loader alone, a new consumer group re-reading what its intake produced, into
#   ClickHouse (the peer's confluent-kafka + clickhouse-driver loader; `cinema up` with
#   only the loader), first row to last); ugc_intake_only: ugc_intake against a second
#   `cinema up` with no consumers (--no-ugc-loader), as the peer's intake runs, so the
#   intake path is compared alone; REUSE=1 keeps the data of the last
#   run (no seeding, copying or indexing); CINEMA_RUNTIME_CONFIG=FILE is passed to
#   `cinema up --runtime-config-file` (default cinema-runtime-config.toml); CINEMA_BIN=FILE measures another build;
#   PROFILE_DIR=DIR records a CPU profile of `cinema up` during each route's cinema run
#   (perf, DIR/ROUTE.perf, guest functions named through --guest-perf-map; read with
#   `perf report -i DIR/ROUTE.perf --no-children`; PROFILE_CALL_GRAPH=dwarf gives callers
#   in the host, which has no frame pointers); CPU_BY_PROCESS=1 prints, per route and
#   side, the CPU seconds each process used (servers included: Postgres, ClickHouse,
#   the broker, wrk) to stderr.
#
# What it does: copies the peers to a scratch folder (CINEMA_PEERS_DIR, default
# ../shared/peers; never changed in place), makes their virtualenv, seeds the peer's
# database with FILMS films (default 100000), copies those rows into a platform
# database of its own (same ids), builds the search index, starts the peer (uvicorn, 2
# workers, Redis cache) and `cinema up`, then drives both with the peer's wrk scripts.
# The platform's token belongs to a subscriber, so every film answers on both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
# Ports below the ephemeral range (32768+), so a client socket lingering in TIME_WAIT
# never holds them.
ROOT=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cinema-target}"
DURATION="${1:-10s}"
CONNECTIONS="${2:-32}"
FILMS="${FILMS:-100000}"
PEERS_SOURCE="${CINEMA_PEERS_DIR:-$ROOT/../shared/peers}"
SCRATCH="${CINEMA_COMPARE_DIR:-/var/tmp/cinema-compare}"
PEERS="$SCRATCH/peers"
ADDR=127.0.0.1:28400
INTERNAL=127.0.0.1:28401
PEER_PORT=28410
PEER_UNCACHED_PORT=28411
PEER_INTAKE_PORT=28412
# Kafka names of this run (the broker of scripts/services.sh, shared with the peer).
RUN_ID="compare-$(date +%s)"
DB_BASE="${CINEMA_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB_NAME=cinema_compare
DB_URL="$DB_BASE/$DB_NAME?sslmode=disable"
# ClickHouse database of this run's events (made empty at each start, so the loader
# row knows how many events the intake row produced).
CH_DB="${DB_NAME}_events"
INDEX_DIR="$SCRATCH/index"
CINEMA="${CINEMA_BIN:-$CARGO_TARGET_DIR/release/cinema}"
ROUTES="${ROUTES:-films_page film_detail films_search persons_search film_detail_any search_uncached list_uncached list_mix facets ugc_intake ugc_loader ugc_intake_only}"
CH_URL="${CINEMA_CLICKHOUSE_URL:-http://127.0.0.1:8123}"
RELOAD_ADDR=127.0.0.1:28402
RELOAD_INTERNAL=127.0.0.1:28403

if [[ " $ROUTES " == *" ugc_loader "* && " $ROUTES " != *" ugc_intake "*"ugc_loader "* ]]; then
  echo "ugc_loader re-reads what ugc_intake produced: list ugc_intake before it in ROUTES" >&2
  exit 1
fi

# shellcheck source=bench/lib.sh
. bench/lib.sh
ensure_wrk
[ -d "$PEERS_SOURCE" ] || { echo "peers not found at $PEERS_SOURCE: set CINEMA_PEERS_DIR" >&2; exit 1; }
for c in auth catalog; do
  [ -f "build/components/$c.wasm" ] || { echo "build/components/$c.wasm missing: run 'make components'" >&2; exit 1; }
done
build_cinema

if [ "${REUSE:-}" = 1 ] && [ -d "$INDEX_DIR" ] && [ -d "$PEERS/load/data" ]; then
  echo "reusing the data of the last run in $SCRATCH"
  PY="$("$PEERS/venv.sh")/bin/python"
  CINEMA_SIGNING_KEY_ENCRYPTION_KEY=$(cat "$SCRATCH/kek")
  export CINEMA_SIGNING_KEY_ENCRYPTION_KEY
else
  echo "copying the peers to $PEERS..."
  mkdir -p "$SCRATCH"
  rm -rf "$PEERS"
  cp -r "$PEERS_SOURCE" "$PEERS"
  rm -rf "$PEERS/results" "$PEERS/load/data"
  echo "peer services and virtualenv (first run installs them)..."
  "$PEERS/services.sh" up >/dev/null
  PY="$("$PEERS/venv.sh")/bin/python"

  echo "seeding the peer with $FILMS films..."
  (cd "$PEERS" && "$PY" catalog-fastapi/seed.py --films "$FILMS" >/dev/null)

  echo "copying the peer's rows into $DB_NAME..."
  psql -q "$DB_BASE/postgres" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1
  "$CINEMA" migrate --postgres-url "$DB_URL" --clickhouse-database "$DB_NAME" >/dev/null
  sed "s/-d cinema /-d $DB_NAME /g" "$PEERS/tools/copy-into-cinema.sh" >"$SCRATCH/copy-into-cinema.sh"
  bash "$SCRATCH/copy-into-cinema.sh"
  export CINEMA_SIGNING_KEY_ENCRYPTION_KEY
  CINEMA_SIGNING_KEY_ENCRYPTION_KEY=$("$CINEMA" keys new-kek)
  "$CINEMA" keys rotate --postgres-url "$DB_URL" >/dev/null
  rm -rf "$INDEX_DIR"
  echo "building the platform's search index..."
  "$CINEMA" reindex --postgres-url "$DB_URL" --index-dir "$INDEX_DIR" | tr '\r' '\n' | tail -1
  echo "$CINEMA_SIGNING_KEY_ENCRYPTION_KEY" >"$SCRATCH/kek"
fi

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

if curl -fs -o /dev/null "http://127.0.0.1:$PEER_PORT/health"; then
  echo "port $PEER_PORT already answers: stop what runs there first" >&2
  exit 1
fi
echo "starting the peer (uvicorn, 2 workers, Redis cache) on :$PEER_PORT..."
(cd "$PEERS" && CACHE_TTL_S=300 WORKERS=2 PORT=$PEER_PORT exec catalog-fastapi/run.sh >"$SCRATCH/peer.log" 2>&1) &
pids+=($!)
# The same peer without its cache, for the uncached rows; it idles until they run.
if [[ " $ROUTES " == *_uncached* ]]; then
  echo "starting the peer without its cache on :$PEER_UNCACHED_PORT..."
  (cd "$PEERS" && CACHE_TTL_S=0 WORKERS=2 PORT=$PEER_UNCACHED_PORT exec catalog-fastapi/run.sh >"$SCRATCH/peer-uncached.log" 2>&1) &
  pids+=($!)
fi
if [[ " $ROUTES " == *" ugc_intake"* ]]; then
  echo "starting the peer's UGC intake (uvicorn, 2 workers, aiokafka) on :$PEER_INTAKE_PORT..."
  (cd "$PEERS" && KAFKA_TOPIC="$RUN_ID.peer" WORKERS=2 PORT=$PEER_INTAKE_PORT exec ugc-python/run-intake.sh >"$SCRATCH/peer-intake.log" 2>&1) &
  pids+=($!)
fi
curl -fsS "$CH_URL" --data-binary "DROP DATABASE IF EXISTS $CH_DB" >/dev/null
"$CINEMA" migrate --postgres-url "$DB_URL" --clickhouse-url "$CH_URL" --clickhouse-database "$CH_DB" >/dev/null
export CINEMA_INTERNAL_API_TOKEN="compare-$$-$RANDOM"
export_component_databases "$DB_URL"
echo "starting cinema up on $ADDR..."
SPIN_VARIABLE_JWKS="$("$CINEMA" keys jwks --postgres-url "$DB_URL")" \
  SPIN_VARIABLE_INTERNAL_API_URL="http://$INTERNAL" RUST_LOG=warn \
  "$CINEMA" up --from spin.toml --listen "$ADDR" --internal-listen "$INTERNAL" \
  --index-dir "$INDEX_DIR" --etl-postgres-url "$DB_URL" --auth-postgres-url "$DB_URL" \
  --runtime-config-file "${CINEMA_RUNTIME_CONFIG:-cinema-runtime-config.toml}" \
  --kafka-brokers 127.0.0.1:9092 --ugc-topic "$RUN_ID.ugc" --ugc-loader-group "$RUN_ID.loader" \
  --ugc-postgres-url "$DB_URL" --ugc-read-model-group "$RUN_ID.read_model" --spool-dir "$SCRATCH/spool" \
  --clickhouse-url "$CH_URL" --clickhouse-database "$CH_DB" ${PROFILE_DIR:+--guest-perf-map} \
  >"$SCRATCH/cinema.log" 2>&1 &
cinema_pid=$!
pids+=("$cinema_pid")
for _ in $(seq 1 300); do
  curl -fs -o /dev/null "http://127.0.0.1:$PEER_PORT/health" &&
    { [[ " $ROUTES " != *_uncached* ]] || curl -fs -o /dev/null "http://127.0.0.1:$PEER_UNCACHED_PORT/health"; } &&
    curl -fs -o /dev/null -H "x-cinema-internal-token: $CINEMA_INTERNAL_API_TOKEN" "http://$INTERNAL/search/version" && break
  sleep 0.2
done

curl -fsS -o /dev/null -X POST "http://$ADDR/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"compare@example.com","password":"Compare-pass1"}' 2>/dev/null || true
psql -q "$DB_URL" -c "INSERT INTO auth.user_roles (user_id, role_id)
  SELECT id, '00000000-0000-4000-8000-000000000003' FROM auth.users WHERE email = 'compare@example.com'
  ON CONFLICT DO NOTHING"
CINEMA_TOKEN=$(curl -fsS -X POST "http://$ADDR/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"compare@example.com","password":"Compare-pass1"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
PEER_TOKEN=$(cd "$PEERS" && "$PY" catalog-fastapi/mkjwt.py)
if [[ " $ROUTES " == *" ugc_intake"* ]]; then
  # 20 users on each side, one token each, as the peer's ugc_events script cycles them.
  (cd "$PEERS" && "$PY" catalog-fastapi/mkjwt.py --count 20) >"$SCRATCH/peer-tokens.txt"
  : >"$SCRATCH/cinema-tokens.txt"
  for n in $(seq 1 20); do
    curl -fsS -o /dev/null -X POST "http://$ADDR/api/v1/auth/signup" -H 'content-type: application/json' \
      -d "{\"email\":\"viewer$n@compare.example.com\",\"password\":\"Compare-pass1\"}" 2>/dev/null || true
    curl -fsS -X POST "http://$ADDR/api/v1/auth/login" -H 'content-type: application/json' \
      -d "{\"email\":\"viewer$n@compare.example.com\",\"password\":\"Compare-pass1\"}" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' >>"$SCRATCH/cinema-tokens.txt"
  done
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$PEER_INTAKE_PORT/health" && break
    sleep 0.2
  done
fi

# `film_detail` asks for the first DETAIL_IDS films (default 1000), so the warm-up fills
# both caches; `film_detail_any` asks for any of the films (the peer's own choice), so
# most answers are cache misses on both sides.
DETAIL_IDS="${DETAIL_IDS:-1000}"
head -n "$DETAIL_IDS" "$PEERS/load/data/film_ids.txt" >"$PEERS/load/data/film_ids_cached.txt"

# search_api NAME MODE DURATION -> the host's search API driven by bench/wrk/search_api.lua
search_api() {
  MODE="$2" DATA_DIR="$PEERS/load/data" wrk -t2 -c"$CONNECTIONS" -d"$3" --latency --timeout 10s \
    -H "x-cinema-internal-token: $CINEMA_INTERNAL_API_TOKEN" -s "$ROOT/bench/wrk/search_api.lua" "http://$INTERNAL"
}

# result SERVICE BASE TOKEN ROUTE -> "rps p99_ms errors" (after a warm-up that fills the
# caches; errors: non-2xx answers and socket errors); "- - 0" when SERVICE has no such route
result() {
  local script=$4 ids=film_ids_cached.txt
  case $1:$4 in
    *:film_detail_any) script=film_detail ids=film_ids.txt ;;
    peer:search_uncached) script=films_search ;;
    peer:list_uncached) script=films_page ;;
    peer:list_mix | peer:facets) echo "- - 0"; return ;;
    *:ugc_intake | *:ugc_intake_only)
      local tokens="$SCRATCH/$1-tokens.txt" base=$2
      [ "$1" = peer ] && base="http://127.0.0.1:$PEER_INTAKE_PORT"
      if [ "$1:$4" = cinema:ugc_intake_only ]; then
        start_intake_only
        base="http://$RELOAD_ADDR"
      fi
      BASE_URL="$base" TOKEN_FILE="$tokens" TOKENS_FILE="$tokens" DATA_DIR="$PEERS/load/data" PEERS_DIR="$PEERS" \
        "$PEERS/load/run_wrk.sh" ugc_events 3s "$CONNECTIONS" >/dev/null 2>&1 || true
      BASE_URL="$base" TOKEN_FILE="$tokens" TOKENS_FILE="$tokens" DATA_DIR="$PEERS/load/data" PEERS_DIR="$PEERS" \
        "$PEERS/load/run_wrk.sh" ugc_events "$DURATION" "$CONNECTIONS" 2>&1 | tee "$SCRATCH/$1-$4.txt" |
        awk '/^RESULT/ {sub(/^RESULT /, ""); print}' |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["rps"], r["p99_ms"], sum(r["errors"].values()))'
      [ -z "${intake_only_pid:-}" ] || { kill "$intake_only_pid" 2>/dev/null; wait "$intake_only_pid" 2>/dev/null || true; intake_only_pid=""; }
      return ;;
    peer:ugc_loader)
      (cd "$PEERS" && KAFKA_TOPIC="$RUN_ID.peer" KAFKA_GROUP="$RUN_ID.peer-reload" LOG_LEVEL=WARNING \
        ugc-python/run-loader.sh --idle-exit 5) 2>&1 | tee "$SCRATCH/peer-$4.txt" |
        awk '/^SUMMARY/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "rows_per_s") print kv[2], "-", 0 } }'
      return ;;
    cinema:ugc_loader)
      cinema_loader_rate
      return ;;
    cinema:search_uncached | cinema:list_uncached | cinema:list_mix | cinema:facets)
      local mode=${4%_uncached}
      search_api "$1" "$mode" 3s >/dev/null 2>&1 || true
      search_api "$1" "$mode" "$DURATION" 2>&1 | tee "$SCRATCH/$1-$4.txt" |
        awk '/^RESULT/ {sub(/^RESULT /, ""); print}' |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["rps"], r["p99_ms"], sum(r["errors"].values()))'
      return ;;
  esac
  BASE_URL="$2" TOKEN="$3" DATA_DIR="$PEERS/load/data" PEERS_DIR="$PEERS" IDS_FILE="$ids" \
    "$PEERS/load/run_wrk.sh" "$script" 5s "$CONNECTIONS" >/dev/null 2>&1 || true
  BASE_URL="$2" TOKEN="$3" DATA_DIR="$PEERS/load/data" PEERS_DIR="$PEERS" IDS_FILE="$ids" \
    "$PEERS/load/run_wrk.sh" "$script" "$DURATION" "$CONNECTIONS" 2>&1 | tee "$SCRATCH/$1-$4.txt" |
    awk '/^RESULT/ {sub(/^RESULT /, ""); print}' |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["rps"], r["p99_ms"], sum(r["errors"].values()))'
}

# start_intake_only: a second `cinema up` (the same components and keys, its own
# topic) with the intake and no consumers; sets $intake_only_pid.
start_intake_only() {
  SPIN_VARIABLE_JWKS="$("$CINEMA" keys jwks --postgres-url "$DB_URL")" \
    SPIN_VARIABLE_INTERNAL_API_URL="http://$RELOAD_INTERNAL" RUST_LOG=warn \
    "$CINEMA" up --from spin.toml --listen "$RELOAD_ADDR" --internal-listen "$RELOAD_INTERNAL" \
    --runtime-config-file "${CINEMA_RUNTIME_CONFIG:-cinema-runtime-config.toml}" \
    --auth-postgres-url "$DB_URL" --kafka-brokers 127.0.0.1:9092 --ugc-topic "$RUN_ID.only" \
    --no-ugc-loader --spool-dir "$SCRATCH/spool-only" >"$SCRATCH/cinema-intake-only.log" 2>&1 &
  intake_only_pid=$!
  pids+=("$intake_only_pid")
  for _ in $(seq 1 300); do
    curl -fs -o /dev/null "http://$RELOAD_INTERNAL/health" && return 0
    sleep 0.2
  done
  echo "the intake-only cinema up did not start; see $SCRATCH/cinema-intake-only.log" >&2
}

# cinema_loader_rate -> "events/s - errors": once the running platform's loader has
# stored every event its intake took, a second `cinema up` with only the loader (a new
# group) re-reads the topic into a fresh ClickHouse database; first row to last.
cinema_loader_rate() {
  local query="SELECT count() FROM ugc_events" rows last=-1 got first="" started reload="${DB_NAME}_reload"
  while :; do
    rows=$(curl -fsS "$CH_URL/?database=$CH_DB" --data-binary "$query")
    [ "$rows" = "$last" ] && break
    last=$rows; sleep 2
  done
  echo "  ugc_intake with consumers: $rows events in ClickHouse, accept-to-ClickHouse lag $(curl -fsS "$CH_URL/?database=$CH_DB" --data-binary \
    "SELECT concat('p50 ', toString(quantile(0.5)(load_lag_ms)), ' ms, p99 ', toString(quantile(0.99)(load_lag_ms)), ' ms') FROM ugc_events")" >&2
  curl -fsS "$CH_URL" --data-binary "DROP DATABASE IF EXISTS $reload" >/dev/null
  "$CINEMA" migrate --postgres-url "$DB_URL" --clickhouse-url "$CH_URL" --clickhouse-database "$reload" >/dev/null
  RUST_LOG=warn "$CINEMA" up --from spin.toml --listen "$RELOAD_ADDR" --internal-listen "$RELOAD_INTERNAL" \
    --kafka-brokers 127.0.0.1:9092 --ugc-topic "$RUN_ID.ugc" --ugc-loader-group "$RUN_ID.reload" \
    --spool-dir "$SCRATCH/spool-reload" --clickhouse-url "$CH_URL" --clickhouse-database "$reload" \
    >"$SCRATCH/cinema-reload.log" 2>&1 &
  local reload_pid=$!
  started=$(date +%s)
  while :; do
    got=$(curl -fsS "$CH_URL/?database=$reload" --data-binary "$query" 2>/dev/null || echo 0)
    [ -z "$first" ] && [ "$got" -gt 0 ] && first=$(date +%s.%N)
    [ "$got" -ge "$rows" ] && break
    if [ $(($(date +%s) - started)) -gt 300 ]; then
      echo "  the reloading loader stored $got of $rows events in 300 s; see $SCRATCH/cinema-reload.log" >&2
      break
    fi
    sleep 0.1
  done
  local done_at
  done_at=$(date +%s.%N)
  kill "$reload_pid" 2>/dev/null; wait "$reload_pid" 2>/dev/null || true
  awk -v r="$got" -v a="$first" -v b="$done_at" -v want="$rows" \
    'BEGIN { printf "%.0f - %d\n", r / (b - a), (r < want) ? want - r : 0 }' | tee "$SCRATCH/cinema-ugc_loader.txt"
}

echo
echo "catalog reads, answer caches warm (film_detail_any: any film, mostly misses; *_uncached, list_mix, facets: no cache, the host's search API; ugc_intake: requests of 100 events; ugc_loader: events/s re-read into ClickHouse; ugc_intake_only: cinema up without consumers), wrk -t2 -c$CONNECTIONS -d$DURATION, $(nproc) cores, $FILMS films ($(date -u +%F), $(git rev-parse --short HEAD)):"
printf '| %-15s | %12s | %12s | %14s | %14s | %6s |\n' route "peer req/s" "peer p99 ms" "cinema req/s" "cinema p99 ms" ratio
printf '|%s|%s|%s|%s|%s|%s|\n' "-----------------" "--------------" "--------------" "----------------" "----------------" "--------"
for route in $ROUTES; do
  peer_base="http://127.0.0.1:$PEER_PORT"
  [[ $route != *_uncached ]] || peer_base="http://127.0.0.1:$PEER_UNCACHED_PORT"
  [ -z "${CPU_BY_PROCESS:-}" ] || python3 bench/cpu_by_process.py save "$SCRATCH/cpu.json"
  read -r peer_rps peer_p99 peer_errors <<<"$(result peer "$peer_base" "$PEER_TOKEN" "$route")"
  [ -z "${CPU_BY_PROCESS:-}" ] || { echo "  CPU seconds by process, peer $route:"; python3 bench/cpu_by_process.py diff "$SCRATCH/cpu.json" | sed 's/^/    /'; } >&2
  profiler=""
  if [ -n "${PROFILE_DIR:-}" ]; then
    command -v perf >/dev/null || { echo "PROFILE_DIR needs perf (apt-get install linux-perf)" >&2; exit 1; }
    mkdir -p "$PROFILE_DIR"
    perf record -q -F 499 --call-graph "${PROFILE_CALL_GRAPH:-fp}" -p "$cinema_pid" -o "$PROFILE_DIR/$route.perf" >/dev/null 2>&1 &
    profiler=$!
  fi
  [ -z "${CPU_BY_PROCESS:-}" ] || python3 bench/cpu_by_process.py save "$SCRATCH/cpu.json"
  read -r cinema_rps cinema_p99 cinema_errors <<<"$(result cinema "http://$ADDR" "$CINEMA_TOKEN" "$route")"
  [ -z "${CPU_BY_PROCESS:-}" ] || { echo "  CPU seconds by process, cinema $route:"; python3 bench/cpu_by_process.py diff "$SCRATCH/cpu.json" | sed 's/^/    /'; } >&2
  [ -z "$profiler" ] || { kill -INT "$profiler" 2>/dev/null; wait "$profiler" 2>/dev/null || true; }
  [ "$peer_errors" = 0 ] || echo "  warning: the peer answered $route with $peer_errors errors (see $SCRATCH/peer-$route.txt)" >&2
  [ "$cinema_errors" = 0 ] || echo "  warning: cinema answered $route with $cinema_errors errors (see $SCRATCH/cinema-$route.txt)" >&2
  ratio=$(python3 -c "print('-' if '$peer_rps' == '-' else f'{float(\"$cinema_rps\") / float(\"$peer_rps\"):.1f}x')")
  printf '| %-15s | %12s | %12s | %14s | %14s | %6s |\n' "$route" "$peer_rps" "$peer_p99" "$cinema_rps" "$cinema_p99" "$ratio"
done
