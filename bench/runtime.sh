#!/usr/bin/env bash
# Component runtime benchmark: the `hello` component under `cinema up` against the same
# handler as native axum, both on loopback, driven by wrk. Prints requests/s, p50 and p99
# for each and the ratio. Usage: bench/runtime.sh [duration, default 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cinema-target}"
DURATION="${1:-10s}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
COMPONENT_ADDR=127.0.0.1:28080
NATIVE_ADDR=127.0.0.1:28081

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian package)..."
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
[ -f build/components/hello.wasm ] || { echo "build/components/hello.wasm missing: run 'make components'" >&2; exit 1; }
# CINEMA_BIN: another `cinema` binary to measure (an older build, say).
CINEMA="${CINEMA_BIN:-$CARGO_TARGET_DIR/release/cinema}"
echo "building release binaries..."
cargo build --release -q -p cinema-host -p cinema-bench-native-hello

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_for() {
  local url=$1
  for _ in $(seq 1 100); do
    curl -fsS "$url" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server at $url did not come up" >&2
  exit 1
}

# shellcheck disable=SC2086  # BENCH_CINEMA_ARGS is a list of extra flags
RUST_LOG=warn "$CINEMA" up --from spin.toml --listen "$COMPONENT_ADDR" \
  --internal-listen 127.0.0.1:28082 ${BENCH_CINEMA_ARGS:-} >/dev/null &
pids+=($!)
"$CARGO_TARGET_DIR/release/cinema-bench-native-hello" "$NATIVE_ADDR" >/dev/null &
pids+=($!)
wait_for "http://$COMPONENT_ADDR/hello"
wait_for "http://$NATIVE_ADDR/hello"

# run NAME URL -> prints "NAME rps p50 p99"
run() {
  local name=$1 url=$2 out
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null  # warm-up
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url")
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
  echo "$name $rps $p50 $p99"
  [ -z "$errors" ] || echo "  $name: $errors" >&2
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION on $(nproc) cores"
component=$(run component "http://$COMPONENT_ADDR/hello")
native=$(run native "http://$NATIVE_ADDR/hello")
printf '%-10s %12s %10s %10s\n' server "req/s" p50 p99
# shellcheck disable=SC2086  # each result is "name rps p50 p99", split on purpose
printf '%-10s %12s %10s %10s\n' $component
# shellcheck disable=SC2086
printf '%-10s %12s %10s %10s\n' $native
awk -v c="$(cut -d' ' -f2 <<<"$component")" -v n="$(cut -d' ' -f2 <<<"$native")" \
  'BEGIN { printf "component/native throughput ratio: %.2f (%.0f%% of native)\n", c/n, 100*c/n }'
