# Shared by the bench scripts (sourced, not run).

# Installs wrk when missing.
ensure_wrk() {
  command -v wrk >/dev/null 2>&1 || { echo "installing wrk..."; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
}

# build_cinema: builds the release `cinema` unless CINEMA_BIN names another build to
# measure (an older one, say), which is then used as it is.
build_cinema() {
  if [ -z "${CINEMA_BIN:-}" ]; then
    echo "building release binaries..."
    cargo build --release -q -p cinema-host
  fi
}

# export_component_databases DB_URL: the components reach the database at DB_URL
# (postgres://user@host:port/db) each as its own role, as in spin.toml.
export_component_databases() {
  local address=${1#*://}
  address=${address#*@}
  export SPIN_VARIABLE_AUTH_DATABASE_URL="postgres://cinema_auth@$address"
  export SPIN_VARIABLE_ADMIN_DATABASE_URL="postgres://cinema_admin@$address"
  export SPIN_VARIABLE_UGC_DATABASE_URL="postgres://cinema_ugc@$address"
}

# measure NAME WRK-ARGS... -> prints "NAME req/s R  p50 X  p99 Y" (and any errors)
measure() {
  local name=$1 out
  shift
  out=$(wrk --latency "$@")
  printf '%s %s  p50 %s  p99 %s\n' "$name" "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
  awk '/Non-2xx|Socket errors/ {print "  " $0}' <<<"$out"
}

# start_platform DB_URL CH_URL CH_DB TOPICS INDEX_DIR SPOOL ADDR INTERNAL LOG: starts
# `cinema up` from spin.toml with every service (Kafka names prefixed with TOPICS,
# no mail), sets $pid and waits until its internal API answers.
start_platform() {
  local db_url=$1 ch_url=$2 ch_db=$3 topics=$4 index_dir=$5 spool=$6 addr=$7 internal=$8 log=$9
  export_component_databases "$db_url"
  SPIN_VARIABLE_JWKS="$("$CINEMA" keys jwks --postgres-url "$db_url")" \
    SPIN_VARIABLE_INTERNAL_API_URL="http://$internal" SPIN_VARIABLE_AUTH_API_URL="http://$addr" RUST_LOG=warn \
    "$CINEMA" up --from spin.toml --runtime-config-file cinema-runtime-config.toml \
    --listen "$addr" --internal-listen "$internal" \
    --index-dir "$index_dir" --etl-postgres-url "$db_url" \
    --kafka-brokers 127.0.0.1:9092 --ugc-topic "$topics.ugc" --ugc-loader-group "$topics.loader" \
    --ugc-postgres-url "$db_url" --ugc-read-model-group "$topics.read_model" --spool-dir "$spool" \
    --clickhouse-url "$ch_url" --clickhouse-database "$ch_db" \
    --auth-events-topic "$topics.auth" --catalog-events-topic "$topics.catalog" --notify-group "$topics.notify" \
    >/dev/null 2>"$log" &
  pid=$!
  for _ in $(seq 1 600); do curl -fsS "http://$internal/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "cinema up did not start within 60 s; see $log" >&2
  return 1
}
